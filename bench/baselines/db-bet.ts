/**
 * Baseline: the database work of one bet alone. The wallet's own Ledger.bet (same SQL, same pool
 * size, same per-call deadline as a gRPC call carries) on PostgreSQL, no HTTP, no gRPC, from
 * `workers` concurrent loops in this one process. Players of its own (funded and given sessions
 * first, untimed), in the benchmark's schema.
 *
 * Usage: db-bet.ts '<json options>'  → prints `RESULT <json>` on stdout.
 */
import { buildCurrencyTable } from '@phia/proto';
import { Ledger, openDatabase } from '@phia/wallet-service';
import { percentiles } from '../lib/load.js';

interface Options {
  databaseUrl: string;
  schema: string;
  poolSize: number;
  workers: number;
  durationS: number;
  warmupS: number;
  players: number;
  deadlineMs: number;
  tag: string;
}

const options = JSON.parse(process.argv[2] ?? '{}') as Options;
const db = await openDatabase({ databaseUrl: options.databaseUrl, schema: options.schema, poolSize: options.poolSize });
const ledger = new Ledger(db, { currencies: buildCurrencyTable() });

const players: { user_id: string; session_id: string; game_session_id: string }[] = [];
for (let start = 0; start < options.players; start += 32) {
  const batch = await Promise.all(
    Array.from({ length: Math.min(32, options.players - start) }, async (_, k) => {
      const i = start + k;
      const user = `${options.tag}-p${i}`;
      await ledger.deposit({
        tx_id: `${options.tag}-dep${i}`,
        user_id: user,
        currency: 'USD',
        amount: '1000000000.00',
      });
      const session = await ledger.openSession({ user_id: user, currency: 'USD', ttl_seconds: 3600 });
      return { user_id: user, session_id: session.session_id, game_session_id: `${options.tag}-gs${i}` };
    }),
  );
  players.push(...batch);
}

let n = 0;
let errors = 0;
const errorCodes: Record<string, number> = {};

async function worker(until: number, latencies: number[] | undefined): Promise<void> {
  while (Date.now() < until) {
    const i = n++;
    const player = players[i % players.length];
    if (player === undefined) return;
    const started = performance.now();
    try {
      await ledger.bet(
        {
          tx_id: `${options.tag}-${i}`,
          user_id: player.user_id,
          currency: 'USD',
          amount: '1.00',
          round_id: `${options.tag}-r${i}`,
          game_session_id: player.game_session_id,
          session_id: player.session_id,
          game_id: 'crash',
        },
        { deadline: Date.now() + options.deadlineMs },
      );
      latencies?.push(performance.now() - started);
    } catch (error) {
      errors++;
      const code = (error as { code?: string }).code ?? (error as Error).name;
      errorCodes[code] = (errorCodes[code] ?? 0) + 1;
    }
  }
}

async function phase(seconds: number, latencies?: number[]): Promise<number> {
  const started = performance.now();
  const until = Date.now() + seconds * 1000;
  await Promise.all(Array.from({ length: options.workers }, () => worker(until, latencies)));
  return (performance.now() - started) / 1000;
}

if (options.warmupS > 0) await phase(options.warmupS);
errors = 0;
const latencies: number[] = [];
const cpuBefore = process.cpuUsage();
const durationS = await phase(options.durationS, latencies);
const cpu = process.cpuUsage(cpuBefore);
const stats = percentiles(latencies);
const r2 = (value: number) => Math.round(value * 100) / 100;
console.log(
  `RESULT ${JSON.stringify({
    rps: Math.round(stats.count / durationS),
    latencyMs: { p50: r2(stats.p50), p99: r2(stats.p99), max: r2(stats.max) },
    responses: stats.count,
    errors,
    errorCodes,
    durationS: r2(durationS),
    workers: options.workers,
    poolSize: options.poolSize,
    cpuUsPerBet: stats.count > 0 ? Math.round((cpu.user + cpu.system) / stats.count) : NaN,
  })}`,
);
await db.close();
process.exit(0);
