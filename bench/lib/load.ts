/**
 * One autocannon run against a URL, summarized: req/s, latency percentiles, status counts, and
 * per-status latency (from the `response` event, so fast 503s can be told from slow 504s).
 */
import autocannon from 'autocannon';

export interface LatencyStats {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

export interface LoadResult {
  /** Completed responses per second over the run (all statuses). */
  rps: number;
  /** 2xx responses per second. */
  okRps: number;
  latencyMs: { mean: number; p50: number; p90: number; p99: number; max: number };
  responses: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  statusCodes: Record<string, number>;
  /** Latency by status code, from every response. */
  latencyByStatus: Record<string, LatencyStats>;
  durationS: number;
  connections: number;
}

export interface LoadOptions {
  url: string;
  connections: number;
  durationS: number;
  requests: autocannon.Request[];
  /** Seconds before autocannon gives up on one request (counted in `timeouts`). */
  timeoutS?: number;
}

/** Latency percentiles of a list of values (ms); sorts in place. */
export function percentiles(values: number[]): LatencyStats {
  values.sort((a, b) => a - b);
  const at = (q: number) =>
    values.length === 0 ? 0 : (values[Math.min(values.length - 1, Math.floor(q * values.length))] ?? 0);
  return {
    count: values.length,
    p50: at(0.5),
    p99: at(0.99),
    max: values.length === 0 ? 0 : (values[values.length - 1] ?? 0),
  };
}

/** The latencies of calls made one at a time (ms): percentiles and mean, to the microsecond. */
export function loneLatencies(values: number[]): LatencyStats & { avg: number } {
  const avg = values.reduce((sum, value) => sum + value, 0) / Math.max(1, values.length);
  const stats = percentiles(values);
  const r3 = (value: number) => Math.round(value * 1000) / 1000;
  return { count: stats.count, p50: r3(stats.p50), p99: r3(stats.p99), max: r3(stats.max), avg: r3(avg) };
}

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const byStatus = new Map<number, number[]>();
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: options.url,
        connections: options.connections,
        duration: options.durationS,
        pipelining: 1,
        timeout: options.timeoutS ?? 10,
        requests: options.requests,
      },
      (error, done) => (error ? reject(error as Error) : resolve(done)),
    );
    instance.on('response', (_client, statusCode, _bytes, responseTime) => {
      let list = byStatus.get(statusCode);
      if (list === undefined) byStatus.set(statusCode, (list = []));
      list.push(responseTime);
    });
  });
  const statusCodes: Record<string, number> = {};
  const latencyByStatus: Record<string, LatencyStats> = {};
  let responses = 0;
  let ok = 0;
  for (const [status, list] of byStatus) {
    statusCodes[String(status)] = list.length;
    latencyByStatus[String(status)] = round(percentiles(list));
    responses += list.length;
    if (status >= 200 && status < 300) ok += list.length;
  }
  const durationS = result.duration;
  return {
    rps: Math.round(responses / durationS),
    okRps: Math.round(ok / durationS),
    latencyMs: {
      mean: r2(result.latency.mean),
      p50: r2(result.latency.p50),
      p90: r2(result.latency.p90),
      p99: r2(result.latency.p99),
      max: r2(result.latency.max),
    },
    responses,
    non2xx: responses - ok,
    errors: result.errors,
    timeouts: result.timeouts,
    statusCodes,
    latencyByStatus,
    durationS: r2(durationS),
    connections: options.connections,
  };
}

function r2(value: number): number {
  return Math.round(value * 100) / 100;
}

function round(stats: LatencyStats): LatencyStats {
  return { count: stats.count, p50: r2(stats.p50), p99: r2(stats.p99), max: r2(stats.max) };
}
