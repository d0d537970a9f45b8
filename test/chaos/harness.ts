/**
 * The chaos soak: the real stack (Redis, the wallet on PostgreSQL, two gateways) under signed PHIA
 * traffic while faults are injected on a seeded schedule; then everything heals, the void queues
 * drain, and the verifier judges the books against the answers.
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { formatAmount } from '@phia/proto';
import { FAULT_TYPES, injectFault, type FaultRecord, type FaultType } from './faults.js';
import { pendingVoidsIn } from './phia-client.js';
import { Rng } from './random.js';
import { ChaosStack } from './stack.js';
import { checkBooks, FAULT_GRACE_MS, setTimeOrigin, settleAnswers, Verdict } from './verify.js';
import { DEFAULT_WORKLOAD, Workload, type Player } from './workload.js';

export interface ScheduledFault {
  type: FaultType;
  /** Seconds after the load starts. */
  atSeconds: number;
}

export interface ChaosOptions {
  seed: number;
  durationSeconds: number;
  players: number;
  /** Concurrent request loops. */
  workers: number;
  walletDeadlineMs: number;
  /** aof (default, as deployed): Redis survives a restart with its data; none: a restart loses it all. */
  redisPersistence: 'aof' | 'none';
  /** 'random': a seeded schedule over every fault type; a list: exactly these, each at its time. */
  faults: 'random' | readonly ScheduledFault[];
  /** Pause between two faults of the random schedule. */
  faultGapMs: readonly [number, number];
  maxRequests: number;
  /** Chance that an answered op is followed by a variant (same tx_id, other content); default 0.04. */
  variantP?: number;
  /** Keep the processes' logs even when the run passes. */
  keepLogs: boolean;
  log: (line: string) => void;
}

export const DEFAULT_OPTIONS: Omit<ChaosOptions, 'seed'> = {
  durationSeconds: 120,
  players: 24,
  workers: 16,
  walletDeadlineMs: 1000,
  redisPersistence: 'aof',
  faults: 'random',
  faultGapMs: [1000, 4000],
  maxRequests: 500_000,
  keepLogs: false,
  log: (line) => console.log(line),
};

export interface ChaosResult {
  seed: number;
  passed: number;
  failed: number;
  failures: string[];
  report: string;
  logDir: string;
}

const CURRENCIES = [
  { currency: 'USD', decimals: 2, initial: 20_000n }, // 200.00
  { currency: 'USD', decimals: 2, initial: 20_000n },
  { currency: 'USD', decimals: 2, initial: 20_000n },
  { currency: 'BTC', decimals: 8, initial: 5_000_000n }, // 0.05
];

export async function runChaos(partial: Partial<ChaosOptions> & { seed: number }): Promise<ChaosResult> {
  const options: ChaosOptions = { ...DEFAULT_OPTIONS, ...partial };
  const { log, seed } = options;
  const rng = new Rng(seed);
  const runId = `${seed.toString(16).padStart(8, '0')}${randomBytes(2).toString('hex')}`;
  const started = Date.now();
  const stack = new ChaosStack({
    runId,
    walletDeadlineMs: options.walletDeadlineMs,
    gateways: 2,
    redisPersistence: options.redisPersistence,
  });
  const verdict = new Verdict();
  const faults: FaultRecord[] = [];
  let workload: Workload | undefined;
  let pendingVoidsLeft = -1;
  let replays = 0;
  let loadSeconds = 0;
  let failedWith: unknown;

  log(
    `chaos: seed ${seed} (CHAOS_SEED=${seed}), run ${runId}, ${options.durationSeconds} s, redis persistence ${options.redisPersistence}, logs in ${stack.logDir}`,
  );
  try {
    await stack.start();
    log(
      `chaos: redis :${stack.redisPort}, wallet :${stack.walletPort} (schema ${stack.schema}), gateways :${stack.gatewayPorts.join(', :')}`,
    );
    const players = await fundPlayers(stack, runId, options.players);

    workload = new Workload(stack, players, {
      ...DEFAULT_WORKLOAD,
      maxRequests: options.maxRequests,
      ...(options.variantP === undefined ? {} : { variantP: options.variantP }),
    });
    const loadStart = performance.now();
    setTimeOrigin(loadStart);
    const until = loadStart + options.durationSeconds * 1000;
    const workers = Array.from({ length: options.workers }, (_, index) =>
      workload!.worker(rng.fork(`worker-${index}`), until),
    );
    const schedule = runFaults(stack, options, rng.fork('faults'), players, loadStart, until, faults, log);
    await Promise.all(workers);
    await schedule;
    loadSeconds = (performance.now() - loadStart) / 1000;
    await workload.settle();

    // Heal: every process up, Redis unpaused; then the void queues must drain.
    await stack.heal();
    pendingVoidsLeft = await drainVoids(stack, 60_000);
    verdict.check('no pending void is left after healing', pendingVoidsLeft === 0, () => `${pendingVoidsLeft} pending`);

    const faultWindows = faults.map((fault) => ({
      from: loadStart + fault.at * 1000,
      to: loadStart + fault.at * 1000 + fault.ms + FAULT_GRACE_MS,
    }));
    replays = (await settleAnswers(workload, rng.fork('replay'), verdict, faultWindows)).replays;
    const afterReplays = await drainVoids(stack, 30_000);
    verdict.check('no pending void is left after the replays', afterReplays === 0, () => `${afterReplays} pending`);
    await checkBooks(stack, workload, players, verdict);

    for (const process of stack.processes) {
      for (const exit of process.unexpectedExits) {
        verdict.check('no process exits unless killed by the harness', false, () => exit);
      }
    }
  } catch (error) {
    failedWith = error;
    verdict.check('the harness runs to the end', false, () =>
      error instanceof Error ? (error.stack ?? error.message) : String(error),
    );
  } finally {
    await stack.close({ dropSchema: true, keepLogs: true }).catch(() => undefined);
  }

  const report = formatReport({
    seed,
    runId,
    options,
    totalSeconds: (Date.now() - started) / 1000,
    loadSeconds,
    workload,
    faults,
    verdict,
    replays,
    pendingVoidsLeft,
  });
  log(report);
  if (verdict.failed === 0 && failedWith === undefined && !options.keepLogs) {
    rmSync(stack.logDir, { recursive: true, force: true });
  }
  return {
    seed,
    passed: verdict.passed,
    failed: verdict.failed,
    failures: verdict.failures,
    report,
    logDir: stack.logDir,
  };
}

async function fundPlayers(stack: ChaosStack, runId: string, count: number): Promise<Player[]> {
  const admin = stack.admin();
  try {
    const players: Player[] = [];
    for (let i = 0; i < count; i++) {
      const money = CURRENCIES[i % CURRENCIES.length]!;
      const userId = `${runId}-p${i}`;
      await admin.Deposit({
        tx_id: `${runId}-dep${i}`,
        user_id: userId,
        currency: money.currency,
        amount: formatAmount(money.initial, money.decimals),
      });
      const session = await admin.OpenSession({ user_id: userId, currency: money.currency, ttl_seconds: 86_400 });
      players.push({
        userId,
        currency: money.currency,
        decimals: money.decimals,
        sessionId: session.session_id ?? '',
        gameSessionId: `${runId}-gs${i}`,
        initial: money.initial,
      });
    }
    return players;
  } finally {
    admin.close();
  }
}

async function runFaults(
  stack: ChaosStack,
  options: ChaosOptions,
  rng: Rng,
  players: readonly Player[],
  loadStart: number,
  until: number,
  faults: FaultRecord[],
  log: (line: string) => void,
): Promise<void> {
  const userIds = players.map((player) => player.userId);
  const fixed = options.faults === 'random' ? undefined : options.faults;
  // A fixed list runs each fault at its time; a random schedule draws from a shuffled bag of every type.
  let bag: FaultType[] = [];
  for (let index = 0; ; index++) {
    let type: FaultType;
    if (fixed) {
      const next = fixed[index];
      if (next === undefined) return;
      type = next.type;
      await sleep(Math.max(0, loadStart + next.atSeconds * 1000 - performance.now()));
    } else {
      await sleep(rng.int(options.faultGapMs[0], options.faultGapMs[1]));
      if (bag.length === 0) bag = rng.shuffle(FAULT_TYPES);
      type = bag.pop() as FaultType;
    }
    if (performance.now() > until - 1500) return;
    await stack.heal(); // a process that crashed by itself is restarted (its crash is a finding)
    const at = (performance.now() - loadStart) / 1000;
    const t0 = performance.now();
    let detail: string;
    try {
      detail = await injectFault(type, stack, rng, userIds);
    } catch (error) {
      detail = `injection failed: ${(error as Error).message}`;
      await stack.heal().catch(() => undefined);
    }
    const record = { type, detail, at, ms: Math.round(performance.now() - t0) };
    faults.push(record);
    log(`chaos: t=${at.toFixed(1)}s ${type} (${detail}), healed in ${record.ms} ms`);
  }
}

/** Waits until no gateway has a pending void (their /metrics gauge, and Redis's queue). Returns what is left. */
async function drainVoids(stack: ChaosStack, timeoutMs: number): Promise<number> {
  const until = Date.now() + timeoutMs;
  let zeroes = 0;
  let pending = -1;
  for (;;) {
    pending = await pendingVoids(stack).catch(() => -1);
    zeroes = pending === 0 ? zeroes + 1 : 0;
    if (zeroes >= 2) return 0;
    if (Date.now() > until) return pending;
    await sleep(500);
  }
}

async function pendingVoids(stack: ChaosStack): Promise<number> {
  let total = Number((await stack.redisCli(['ZCARD', 'phia:voids'])).trim());
  for (let index = 0; index < stack.gatewayPorts.length; index++) {
    const response = await fetch(`${stack.gatewayUrl(index)}/metrics`, { signal: AbortSignal.timeout(2000) });
    const text = await response.text();
    // The Redis outbox is counted once above; each gateway adds what waits in its memory.
    const memory = pendingVoidsIn(text, 'memory');
    if (Number.isNaN(memory)) throw new Error('no phia_pending_voids in /metrics');
    total += memory;
  }
  return total;
}

function formatReport(data: {
  seed: number;
  runId: string;
  options: ChaosOptions;
  totalSeconds: number;
  loadSeconds: number;
  workload: Workload | undefined;
  faults: FaultRecord[];
  verdict: Verdict;
  replays: number;
  pendingVoidsLeft: number;
}): string {
  const { workload, verdict } = data;
  const lines: string[] = [];
  const list = (record: Record<string, number>) =>
    Object.entries(record)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([key, value]) => `${key} ${value}`)
      .join(', ');
  const faultCounts: Record<string, number> = {};
  for (const fault of data.faults) faultCounts[fault.type] = (faultCounts[fault.type] ?? 0) + 1;
  lines.push('');
  lines.push(`chaos report: seed ${data.seed} (run ${data.runId})`);
  lines.push(
    `  duration: ${data.loadSeconds.toFixed(1)} s of load, ${data.totalSeconds.toFixed(1)} s in all; ${data.options.workers} workers, ${data.options.players} players`,
  );
  if (workload) {
    const stats = workload.stats;
    lines.push(
      `  requests: ${stats.requests} (${(stats.requests / Math.max(data.totalSeconds, 1)).toFixed(0)}/s overall), money ops ${workload.ops.length}, final replays ${data.replays}`,
    );
    lines.push(`  by action: ${list(stats.byAction)}`);
    lines.push(`  by role: ${list(stats.byRole)}`);
    lines.push(`  answers by status: ${list(stats.byStatus)}`);
    lines.push(`  answers by code: ${list(stats.byCode)}`);
    lines.push(
      `  no answer: ${stats.noAnswer}, REQUEST_IN_PROGRESS: ${stats.inProgress}, refused and rerouted: ${stats.refusedRerouted}, slowest ${Math.round(stats.maxMs)} ms, over 6 s: ${stats.slowOver6s}`,
    );
    if (stats.slow.length > 0) lines.push(`  over 6 s (the first 8): ${stats.slow.join('; ')}`);
  }
  lines.push(`  faults: ${data.faults.length} (${list(faultCounts)})`);
  lines.push(`  pending voids after healing: ${data.pendingVoidsLeft}`);
  for (const note of verdict.notes) lines.push(`  ${note}`);
  for (const [name, counts] of verdict.byCheck) {
    lines.push(`  ${counts.failed === 0 ? 'ok  ' : 'FAIL'} ${name}: ${counts.passed} passed, ${counts.failed} failed`);
  }
  if (verdict.classes.size > 0) {
    lines.push(
      `  answer disagreements by kind (see test/chaos/verify.ts classify): ${list(Object.fromEntries(verdict.classes))}`,
    );
  }
  if (verdict.failures.length > 0) {
    lines.push('  failures (the first 8 of each check):');
    for (const failure of verdict.failures) lines.push(`    - ${failure}`);
  }
  lines.push(`${verdict.passed} passed, ${verdict.failed} failed`);
  if (verdict.failed > 0) lines.push(`reproduce with CHAOS_SEED=${data.seed}`);
  return lines.join('\n');
}
