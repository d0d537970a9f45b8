/**
 * The gateway's user-space instructions per request, counted by valgrind's callgrind: unlike CPU
 * time, the count does not move with the machine's load, so two builds can be compared on a busy
 * machine. Kernel time (socket writes, epoll) is not counted: the CPU figures of `npm run bench` on a
 * quiet machine remain the targets' measure.
 *
 *   node --import tsx bench/instructions.ts [--requests 200] [--rounds 1] [--gateway-entry a.js,b.js]
 *                                           [--gateway-node-args "flags a|flags b"]
 *
 * The gateway runs under `valgrind --tool=callgrind`, counting off during a warm-up that compiles the
 * hot code. Then each batch (bets, replays of them, balances; 2 requests in flight) is counted alone,
 * three times: the least count is kept. Wallet, PostgreSQL and Redis run natively. The counts still
 * move 10 to 30% between two starts of the same build (JIT and GC timing): compare several rounds.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { headers, sign, BET_AMOUNT, CURRENCY, GAME_ID, type Player } from './lib/phia.js';
import { installSignalHandlers, runCleanups } from './lib/proc.js';
import { seedPlayers, startStack, type Stack } from './lib/stack.js';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '200' },
    warmup: { type: 'string', default: '1000' },
    rounds: { type: 'string', default: '1' },
    'gateway-entry': { type: 'string' },
    'gateway-node-args': { type: 'string' },
    'database-url': { type: 'string' },
  },
});
const REQUESTS = Number(values.requests);
const WARMUP = Number(values.warmup);
const ROUNDS = Number(values.rounds);
const IN_FLIGHT = 2;
const BATCHES = 3;
const DATABASE_URL = values['database-url'] ?? process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const entries = (values['gateway-entry'] ?? '').split(',').map((entry) => entry.trim() || undefined);
const nodeArgSets = (values['gateway-node-args'] ?? '')
  .split('|')
  .map((args) => args.trim().split(/\s+/).filter(Boolean));
const variants = Math.max(entries.length, nodeArgSets.length);

type Kind = 'bet' | 'replay' | 'balance';
interface Sent {
  path: string;
  body: string;
}

function betBody(player: Player, tag: string, i: number): string {
  return JSON.stringify({
    user_id: player.user_id,
    currency: CURRENCY,
    session_id: player.session_id,
    game_id: GAME_ID,
    game_session_id: player.game_session_id,
    round_id: `${tag}-r${i}`,
    tx_id: `${tag}-${i}`,
    amount: BET_AMOUNT,
  });
}

/** Sends every request, IN_FLIGHT at a time; throws on any answer but 200 unless `tolerant`. */
async function send(stack: Stack, requests: Sent[], tolerant = false): Promise<void> {
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < requests.length; i = next++) {
      const { path, body } = requests[i] as Sent;
      const response = await fetch(`${stack.gatewayUrl}${path}`, {
        method: 'POST',
        body,
        headers: headers(sign(stack.key, body)),
      });
      const text = await response.text();
      if (response.status !== 200 && !tolerant) throw new Error(`${path}: ${response.status} ${text}`);
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
}

function batches(players: Player[], tag: string, count: number): Record<Kind, Sent[]> {
  const bets = Array.from({ length: count }, (_, i) => ({
    path: '/phia/bet',
    body: betBody(players[i % players.length] as Player, tag, i),
  }));
  const balances = Array.from({ length: count }, (_, i) => {
    const player = players[i % players.length] as Player;
    return {
      path: '/phia/balance',
      body: JSON.stringify({ user_id: player.user_id, currency: CURRENCY, session_id: player.session_id }),
    };
  });
  return { bet: bets, replay: bets, balance: balances };
}

function callgrindControl(pid: number, ...args: string[]): void {
  execFileSync('callgrind_control', [...args, String(pid)], { stdio: 'pipe' });
}

/** Instructions the gateway ran in `run`, counted by callgrind (zeroed before, dumped after). */
async function counted(pid: number, outDir: string, run: () => Promise<void>): Promise<number> {
  const control = (...args: string[]) => callgrindControl(pid, ...args);
  control('-z');
  await run();
  const before = new Set(readdirSync(outDir));
  control('-d');
  const dump = readdirSync(outDir).find((file) => !before.has(file) && file.startsWith('callgrind.out'));
  if (dump === undefined) throw new Error('callgrind wrote no dump');
  const summary = /^(?:summary|totals): (\d+)/m.exec(readFileSync(join(outDir, dump), 'utf8'));
  if (summary === null) throw new Error(`no totals in ${dump}`);
  return Number(summary[1]);
}

async function measure(variant: number, round: number): Promise<Record<Kind, number>> {
  const outDir = mkdtempSync(join(tmpdir(), 'phia-callgrind-'));
  const stack = await startStack({
    databaseUrl: DATABASE_URL,
    deadlineMs: 4500,
    logLevel: 'info',
    logDir: outDir,
    nodeArgs: [],
    gatewayEntry: entries[variant],
    gatewayNodeArgs: nodeArgSets[variant] ?? [],
    gatewayWrapper: [
      'valgrind',
      '--tool=callgrind',
      '--smc-check=all-non-file',
      `--callgrind-out-file=${join(outDir, 'callgrind.out.%p')}`,
    ],
    // Valgrind slows the loop many times over: no shedding for a loop that is merely slow.
    gatewayEnv: { GATEWAY_MAX_EVENT_LOOP_DELAY_MS: '0' },
  });
  try {
    const players = await seedPlayers(stack.wallet, `ins${variant}${round}`, 64);
    const warm = batches(players, `w${variant}${round}`, WARMUP);
    for (const kind of ['bet', 'replay', 'balance'] as const) await send(stack, warm[kind]);
    // The least of BATCHES batches: a batch that met a JIT compilation or a full GC counts more.
    const result = { bet: Infinity, replay: Infinity, balance: Infinity } as Record<Kind, number>;
    for (let batch = 0; batch < BATCHES; batch++) {
      const measured = batches(players, `m${variant}${round}b${batch}`, REQUESTS);
      for (const kind of ['bet', 'replay', 'balance'] as const) {
        const instructions = await counted(stack.gateway.pid, outDir, () => send(stack, measured[kind]));
        result[kind] = Math.min(result[kind], Math.round(instructions / REQUESTS));
      }
    }
    return result;
  } finally {
    await stack.stop();
    await stack.dropSchema();
  }
}

async function main(): Promise<void> {
  installSignalHandlers();
  for (let round = 0; round < ROUNDS; round++) {
    for (let variant = 0; variant < variants; variant++) {
      const result = await measure(variant, round);
      const label = `${entries[variant] ?? 'gateway/dist/server.js'} ${(nodeArgSets[variant] ?? []).join(' ')}`.trim();
      const row = `round ${round + 1}  ${label}: instructions per request: bet ${result.bet}, replay ${result.replay}, balance ${result.balance}`;
      console.log(row);
    }
  }
}

main()
  .catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(() => runCleanups());
