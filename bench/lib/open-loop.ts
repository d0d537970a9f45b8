/**
 * An open-loop load: requests sent at a fixed arrival rate whatever the answers do (as PHIA sends
 * them), each on a free keep-alive connection or a new one. Latency counts from each request's
 * scheduled send time, so time spent waiting behind a slow answer, or in a late generator, counts too
 * (no coordinated omission). A request whose connection closes without an answer is `refused`, timed
 * from its scheduled send too.
 */
import { Agent, request as httpRequest } from 'node:http';
import { percentiles, type LatencyStats } from './load.js';

export interface OpenLoopRequest {
  path: string;
  body: string;
  headers: Record<string, string>;
  /** Called with the answer (status, body) or `refused` / `timeout`. */
  done?: (outcome: number | 'refused' | 'timeout', body: string) => void;
}

export interface OpenLoopOptions {
  url: string;
  /** Requests per second offered. */
  rate: number;
  durationS: number;
  /** The i-th request. */
  next: (i: number) => OpenLoopRequest;
  /** A request unanswered this long after its scheduled send is abandoned (`timeouts`). */
  timeoutMs?: number;
}

export interface OpenLoopResult {
  offeredRps: number;
  sent: number;
  answered: number;
  /** 200 answers per second over the run. */
  okRps: number;
  statusCodes: Record<string, number>;
  /** Every answer, from its scheduled send time. */
  latencyMs: LatencyStats & { mean: number };
  latencyByStatus: Record<string, LatencyStats>;
  /** Connections closed without an answer, timed from the scheduled send. */
  refused: LatencyStats;
  /** The same, timed from the moment the generator sent (its own lag left out). */
  refusedFromSend: LatencyStats;
  timeouts: number;
  /** How late the generator sent, at worst (ms): a large value means the generator itself was starved. */
  maxSendLagMs: number;
  durationS: number;
}

const TICK_MS = 1;

export async function runOpenLoop(options: OpenLoopOptions): Promise<OpenLoopResult> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const target = new URL(options.url);
  const agent = new Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 4096 });
  const byStatus = new Map<number, number[]>();
  const refusedAfter: number[] = [];
  const refusedFromSend: number[] = [];
  let timeouts = 0;
  let sent = 0;
  let answered = 0;
  let maxSendLagMs = 0;
  let outstanding = 0;
  let drained: (() => void) | undefined;

  const finish = () => {
    outstanding--;
    if (outstanding === 0) drained?.();
  };
  const send = (i: number, scheduledAt: number) => {
    const spec = options.next(i);
    const sentAt = performance.now();
    let settled = false;
    outstanding++;
    sent++;
    const settle = (outcome: number | 'refused' | 'timeout', text: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const ms = performance.now() - scheduledAt;
      if (outcome === 'refused') {
        refusedAfter.push(ms);
        refusedFromSend.push(performance.now() - sentAt);
      } else if (outcome === 'timeout') timeouts++;
      else {
        answered++;
        let list = byStatus.get(outcome);
        if (list === undefined) byStatus.set(outcome, (list = []));
        list.push(ms);
      }
      spec.done?.(outcome, text);
      finish();
    };
    const req = httpRequest(
      {
        agent,
        host: target.hostname,
        port: target.port,
        method: 'POST',
        path: spec.path,
        headers: { ...spec.headers, 'content-length': Buffer.byteLength(spec.body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => settle(res.statusCode ?? 0, Buffer.concat(chunks).toString()));
        res.on('error', () => settle('refused', ''));
      },
    );
    const timer = setTimeout(
      () => {
        settle('timeout', '');
        req.destroy();
      },
      Math.max(1, timeoutMs - (performance.now() - scheduledAt)),
    );
    req.on('error', () => settle('refused', ''));
    req.end(spec.body);
  };

  const startedAt = performance.now();
  const total = Math.round(options.rate * options.durationS);
  const interval = 1000 / options.rate;
  let i = 0;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      while (i < total && startedAt + i * interval <= now) {
        const scheduledAt = startedAt + i * interval;
        maxSendLagMs = Math.max(maxSendLagMs, now - scheduledAt);
        send(i, scheduledAt);
        i++;
      }
      if (i >= total) resolve();
      else setTimeout(tick, TICK_MS);
    };
    tick();
  });
  const durationS = (performance.now() - startedAt) / 1000;
  if (outstanding > 0) await new Promise<void>((resolve) => (drained = resolve));
  agent.destroy();

  const statusCodes: Record<string, number> = {};
  const latencyByStatus: Record<string, LatencyStats> = {};
  const all: number[] = [];
  let ok = 0;
  for (const [status, list] of byStatus) {
    statusCodes[String(status)] = list.length;
    all.push(...list);
    if (status === 200) ok += list.length;
    latencyByStatus[String(status)] = round(percentiles(list));
  }
  const mean = all.reduce((sum, value) => sum + value, 0) / Math.max(1, all.length);
  return {
    offeredRps: Math.round(options.rate),
    sent,
    answered,
    okRps: Math.round(ok / durationS),
    statusCodes,
    latencyMs: { ...round(percentiles(all)), mean: r2(mean) },
    latencyByStatus,
    refused: round(percentiles(refusedAfter)),
    refusedFromSend: round(percentiles(refusedFromSend)),
    timeouts,
    maxSendLagMs: r2(maxSendLagMs),
    durationS: r2(durationS),
  };
}

function r2(value: number): number {
  return Math.round(value * 100) / 100;
}

function round(stats: LatencyStats): LatencyStats {
  return { count: stats.count, p50: r2(stats.p50), p99: r2(stats.p99), max: r2(stats.max) };
}
