/**
 * What tracing costs: the real stack (bench/lib/stack.ts: own redis-server, wallet on PostgreSQL,
 * gateway) driven with signed bets, once with tracing off and once with OTEL_EXPORTER_OTLP_ENDPOINT
 * pointing at a collector stub on 127.0.0.1 that accepts every POST and discards it. Prints each
 * service's CPU per bet (from /proc, 10 ms resolution) and the bets per second of each run.
 *
 *   node --import tsx bench/tracing.ts [--duration 5] [--connections 4] [--rounds 1]
 *
 * Needs `npm run build` and PostgreSQL (DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test).
 * A round is off then on; numbers from a shared or busy machine are noisy: run several rounds.
 */
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { runLoad } from './lib/load.js';
import { betRequests, Outcomes, type AnsweredBet } from './lib/phia.js';
import { cpuMeter, installSignalHandlers, onCleanup, runCleanups } from './lib/proc.js';
import { seedPlayers, startStack } from './lib/stack.js';

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '5' },
    connections: { type: 'string', default: '4' },
    rounds: { type: 'string', default: '1' },
    players: { type: 'string', default: '32' },
  },
});
const durationS = Number(values.duration);
const connections = Number(values.connections);
const rounds = Number(values.rounds);
const playerCount = Number(values.players);
const databaseUrl =
  process.env.DATABASE_URL || process.env.TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';

interface Run {
  mode: 'off' | 'on';
  bets: number;
  betsPerS: number;
  gatewayUsPerBet: number;
  walletUsPerBet: number;
  non2xx: number;
}

/** The collector stub: answers 200 to every POST, counts them and their bytes. */
async function startCollector() {
  const seen = { posts: 0, bytes: 0 };
  const server = createServer((request, response) => {
    request.on('data', (chunk: Buffer) => (seen.bytes += chunk.length));
    request.on('end', () => {
      seen.posts++;
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  onCleanup(async () => void server.close());
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

async function measure(mode: 'off' | 'on', collectorUrl: string, tag: string): Promise<Run> {
  // The services read it from the environment their spawn inherits.
  if (mode === 'on') process.env.OTEL_EXPORTER_OTLP_ENDPOINT = collectorUrl;
  else delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
  const logDir = mkdtempSync(join(tmpdir(), `phia-bench-tracing-${mode}-`));
  const stack = await startStack({ databaseUrl, deadlineMs: 2000, logLevel: 'warn', logDir, nodeArgs: [] });
  try {
    const players = await seedPlayers(stack.wallet, tag, playerCount);
    const answered: AnsweredBet[] = [];
    const load = (phase: string, seconds: number) =>
      runLoad({
        url: stack.gatewayUrl,
        connections,
        durationS: seconds,
        requests: betRequests({ key: stack.key, players, tag: `${tag}-${phase}`, outcomes: new Outcomes() }, answered),
      });
    await load('warm', 2); // JIT and connections warm before counting
    const meter = cpuMeter({ gateway: stack.gateway.pid, wallet: stack.walletProcess.pid });
    const result = await load('run', durationS);
    const cpu = meter(result.responses);
    return {
      mode,
      bets: result.responses,
      betsPerS: result.rps,
      gatewayUsPerBet: cpu.gateway ?? NaN,
      walletUsPerBet: cpu.wallet ?? NaN,
      non2xx: result.non2xx,
    };
  } finally {
    await stack.stop();
    await stack.dropSchema();
  }
}

installSignalHandlers();
try {
  const collector = await startCollector();
  const runs: Run[] = [];
  const tag = `trc${Date.now().toString(36)}`;
  for (let round = 0; round < rounds; round++) {
    for (const mode of ['off', 'on'] as const) {
      const run = await measure(mode, collector.url, `${tag}-${round}-${mode}`);
      runs.push(run);
      console.log(
        `${mode.padEnd(3)}  ${String(run.bets).padStart(6)} bets  ${String(run.betsPerS).padStart(5)}/s  ` +
          `gateway ${String(run.gatewayUsPerBet).padStart(5)} µs/bet  wallet ${String(run.walletUsPerBet).padStart(5)} µs/bet` +
          (run.non2xx > 0 ? `  (${run.non2xx} non-2xx)` : ''),
      );
    }
  }
  const mean = (mode: 'off' | 'on', field: 'gatewayUsPerBet' | 'walletUsPerBet') => {
    const picked = runs.filter((run) => run.mode === mode).map((run) => run[field]);
    return picked.reduce((sum, value) => sum + value, 0) / picked.length;
  };
  for (const field of ['gatewayUsPerBet', 'walletUsPerBet'] as const) {
    const off = mean('off', field);
    const on = mean('on', field);
    console.log(
      `${field}: off ${off.toFixed(0)} µs, on ${on.toFixed(0)} µs (${(((on - off) / off) * 100).toFixed(1)}%)`,
    );
  }
  console.log(`collector: ${collector.seen.posts} OTLP posts, ${(collector.seen.bytes / 1024).toFixed(0)} KiB`);
} finally {
  await runCleanups();
}
