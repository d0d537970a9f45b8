/**
 * `npm run chaos`: the chaos soak with a seeded random fault schedule.
 *   CHAOS_DURATION_SECONDS (default 120), CHAOS_SEED (default random), CHAOS_PLAYERS (24),
 *   CHAOS_WORKERS (16), CHAOS_MAX_REQUESTS (500000), CHAOS_KEEP_LOGS=1 keeps the processes' logs,
 *   CHAOS_REDIS_PERSISTENCE (aof: as deployed; none: a Redis restart loses everything),
 *   CHAOS_LOG_LEVEL (the services' LOG_LEVEL, default warn).
 * Exits 0 when every check passed, 1 otherwise (with the seed that reproduces the run).
 */
import { DEFAULT_OPTIONS, runChaos } from './harness.js';
import { randomSeed } from './random.js';

function integer(name: string, fallback: number): number {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  if (!/^[0-9]+$/.test(text)) {
    console.error(`${name} must be a non-negative integer, got "${text}"`);
    process.exit(2);
  }
  return Number(text);
}

const seed = integer('CHAOS_SEED', randomSeed()) >>> 0;
const persistence = process.env.CHAOS_REDIS_PERSISTENCE || 'aof';
if (persistence !== 'aof' && persistence !== 'none') {
  console.error(`CHAOS_REDIS_PERSISTENCE must be aof or none, got "${persistence}"`);
  process.exit(2);
}
const result = await runChaos({
  seed,
  durationSeconds: integer('CHAOS_DURATION_SECONDS', DEFAULT_OPTIONS.durationSeconds),
  players: Math.max(1, integer('CHAOS_PLAYERS', DEFAULT_OPTIONS.players)),
  workers: Math.max(1, integer('CHAOS_WORKERS', DEFAULT_OPTIONS.workers)),
  maxRequests: integer('CHAOS_MAX_REQUESTS', DEFAULT_OPTIONS.maxRequests),
  keepLogs: process.env.CHAOS_KEEP_LOGS === '1',
  redisPersistence: persistence,
});
if (result.failed > 0) console.log(`logs kept in ${result.logDir}`);
process.exit(result.failed === 0 ? 0 : 1);
