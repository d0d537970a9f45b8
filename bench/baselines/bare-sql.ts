/**
 * Baseline: the bare SQL bet, the database's own limit for one bet, measured with pgbench in the same
 * run as the paths it is divided by. One bet is one transaction: lock a random account's row (10,000
 * accounts), update its balance, insert a ledger row, commit (bare-sql/bare-bet.sql), prepared, at
 * `clients` connections. The same transaction always on account 1 from one client
 * (bare-sql/bare-bet-one-row.sql) is one player's limit: the row lock held for one round trip at a
 * time; from two clients (bare-one-row-2), the row lock also passes between two backends (printed
 * beside one-player; the wallet now sends one call per account, its waiting bets as one). The same bet at
 * fixed arrival rates (pgbench --rate, shares of its own measured rate) is the limit of the open-loop
 * latency: pgbench counts each transaction from its scheduled start. Tables in a schema of their own
 * (PGOPTIONS search_path), dropped afterwards.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { percentiles } from '../lib/load.js';
import type { BaselineResult } from '../lib/report.js';

const run = promisify(execFile);
const DIR = new URL('./bare-sql/', import.meta.url).pathname;

export interface BareSqlOptions {
  databaseUrl: string;
  clients: number;
  durationS: number;
  warmupS: number;
  /** pgbench to run (PGBENCH, else `pgbench` on the PATH). */
  pgbench?: string;
  /** Open-loop runs of the bare bet at these shares of its measured rate, `openLoopS` seconds each. */
  openLoopShares?: readonly number[];
  openLoopS?: number;
}

/** The bare SQL bet at a fixed arrival rate: latency from each transaction's scheduled start. */
export interface BareOpenLoop {
  share: number;
  rate: number;
  tps: number;
  latencyMs: { count: number; p50: number; p99: number; max: number };
}

export interface BareSqlResults {
  /** The bare SQL bet at `clients` connections. */
  bet: BaselineResult;
  /** The bare one-row transaction at 1 client. */
  oneRow: BaselineResult;
  /** The same at 2 clients: the row lock handed between two backends. */
  oneRowPair: BaselineResult;
  openLoop: BareOpenLoop[];
}

interface PgbenchRun {
  tps: number;
  latencyAvgMs: number;
  failed: number;
}

/** Runs both; undefined (with the reason) when pgbench is not installed. */
export async function bareSqlBaselines(options: BareSqlOptions): Promise<BareSqlResults | { missing: string }> {
  const pgbench = options.pgbench ?? process.env.PGBENCH ?? 'pgbench';
  try {
    await run(pgbench, ['--version']);
  } catch {
    return { missing: `${pgbench} not found (Debian: the postgresql-NN package); the bare SQL baselines are skipped` };
  }
  const schema = `bare_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: options.databaseUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE SCHEMA ${schema}`);
    await admin.query(`SET search_path = ${schema}`);
    // One statement at a time: VACUUM cannot run inside the implicit transaction of a multi-statement query.
    const statements = readFileSync(`${DIR}bare-schema.sql`, 'utf8').split(/;\s*\n/);
    for (const statement of statements) if (statement.trim() !== '') await admin.query(statement);

    const pgbenchRun = async (
      file: string,
      clients: number,
      seconds: number,
      extra: string[] = [],
      cwd?: string,
    ): Promise<PgbenchRun> => {
      const args = ['-n', '-M', 'prepared', '-f', `${DIR}${file}`, '-c', String(clients)];
      args.push('-j', String(Math.min(clients, 2)), '-T', String(seconds), ...extra, options.databaseUrl);
      const { stdout } = await run(pgbench, args, {
        env: { ...process.env, PGOPTIONS: `-c search_path=${schema}` },
        maxBuffer: 1 << 20,
        cwd,
      });
      const number = (pattern: RegExp) => Number(pattern.exec(stdout)?.[1] ?? NaN);
      return {
        tps: Math.round(number(/^tps = ([\d.]+)/m)),
        latencyAvgMs: number(/^latency average = ([\d.]+) ms/m),
        failed: number(/^number of failed transactions: (\d+)/m) || 0,
      };
    };
    const baseline = (name: string, describe: string, result: PgbenchRun): BaselineResult => ({
      name,
      describe,
      rps: result.tps,
      cpuUsPerRequest: NaN,
      // pgbench reports the average only: shown as p50, the percentiles are not measured.
      latencyMs: { p50: result.latencyAvgMs, p99: NaN, max: NaN },
      non2xx: 0,
      errors: result.failed,
    });

    if (options.warmupS > 0) await pgbenchRun('bare-bet.sql', options.clients, options.warmupS);
    const bet = await pgbenchRun('bare-bet.sql', options.clients, options.durationS);
    const oneRow = await pgbenchRun('bare-bet-one-row.sql', 1, options.durationS);
    const oneRowPair = await pgbenchRun('bare-bet-one-row.sql', 2, options.durationS);
    const openLoop: BareOpenLoop[] = [];
    for (const share of options.openLoopS ? (options.openLoopShares ?? []) : []) {
      const rate = Math.max(1, Math.round(share * bet.tps));
      const dir = mkdtempSync(join(tmpdir(), 'phia-pgbench-'));
      try {
        const rateArgs = ['--rate', String(rate), '--log', '--log-prefix', 'tx'];
        const run = await pgbenchRun('bare-bet.sql', options.clients, options.openLoopS ?? 0, rateArgs, dir);
        openLoop.push({ share, rate, tps: run.tps, latencyMs: scheduledLatencies(dir) });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
    return {
      openLoop,
      bet: baseline(
        'bare-sql',
        `the bare SQL bet (lock a random one of 10,000 accounts, update it, insert a ledger row, commit), pgbench -M prepared, ${options.clients} clients`,
        bet,
      ),
      oneRow: baseline(
        'bare-one-row',
        'the same transaction always on one account, pgbench -M prepared, 1 client (one player’s limit)',
        oneRow,
      ),
      oneRowPair: baseline(
        'bare-one-row-2',
        'the same transaction always on one account, pgbench -M prepared, 2 clients (the row lock passed between backends)',
        oneRowPair,
      ),
    };
  } finally {
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
    await admin.end();
  }
}

/**
 * Latencies from pgbench's per-transaction logs of a --rate run (one file per thread): each line is
 * `client transaction time_us script epoch epoch_us schedule_lag_us`, and time plus lag is the
 * latency from the scheduled start.
 */
export function scheduledLatencies(dir: string): BareOpenLoop['latencyMs'] {
  const latencies: number[] = [];
  for (const file of readdirSync(dir)) {
    for (const line of readFileSync(join(dir, file), 'utf8').split('\n')) {
      const fields = line.split(' ');
      if (fields.length < 7) continue;
      latencies.push((Number(fields[2]) + Number(fields[6])) / 1000);
    }
  }
  // The same percentiles as the gateway's open-loop runs.
  const stats = percentiles(latencies);
  const r2 = (value: number) => Math.round(value * 100) / 100;
  return { count: stats.count, p50: r2(stats.p50), p99: r2(stats.p99), max: r2(stats.max) };
}
