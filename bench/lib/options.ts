/** Benchmark options: CLI flags (`npm run bench -- --connections 32`) or BENCH_* environment variables. */
import { parseArgs } from 'node:util';

export const ALL_PATHS = ['balance', 'bet', 'one-player', 'replay', 'win', 'refund'] as const;
export type PathName = (typeof ALL_PATHS)[number];

export interface BenchOptions {
  connections: number;
  durationS: number;
  warmupS: number;
  paths: PathName[];
  baselines: boolean;
  overload: boolean;
  overloadDurationS: number;
  /** Offered rate of the overload, as a multiple of the path's measured capacity. */
  overloadFactor: number;
  overloadPath: 'bet' | 'balance';
  /** Seconds of each open-loop run (25%, 50%, 90% of the bet capacity); 0 skips them. */
  openLoopS: number;
  players: number;
  deadlineMs: number;
  logLevel: string;
  profile: boolean;
  databaseUrl: string;
  out: string | undefined;
  /** Abort (cleanly) when the whole run takes longer than this. */
  maxRunS: number;
  /** Alternative builds to run instead of gateway/dist/server.js and wallet-service/dist/server.js (experiments). */
  gatewayEntry: string | undefined;
  walletEntry: string | undefined;
  /** Extra node flags for the gateway only (e.g. --max-semi-space-size=8), space-separated. */
  gatewayNodeArgs: string[];
  /** Extra node flags for the wallet only, space-separated. */
  walletNodeArgs: string[];
}

const HELP = `npm run bench -- [options]     (each option also reads BENCH_<NAME>, e.g. BENCH_CONNECTIONS=32)

  --connections N           autocannon connections per path and DB workers (64)
  --duration S              seconds measured per path and per baseline (10)
  --warmup S                unmeasured seconds before each (2)
  --paths a,b               subset of ${ALL_PATHS.join(',')} (all); replay, win and refund need bets,
                            so bet runs whenever one of them does; one-player: every bet for one player
  --no-baselines            skip the baselines (ratios left empty)
  --no-overload             skip the overload run
  --overload-duration S     (10)
  --overload-factor X       offered rate of the overload, open loop, as X x the path's measured rate
                            (2: at 20% of a served request's cost, refusing the excess leaves 80%)
  --overload-path bet|balance (bet)
  --open-loop S             seconds of each open-loop bet run at 25%, 50%, 90% of the measured bet
                            rate (5; 0 skips them)
  --players N               funded players with a session each (512)
  --deadline-ms N           WALLET_DEADLINE_MS of the gateway (2000)
  --log-level L             LOG_LEVEL of gateway and wallet (info, as in production)
  --profile                 --cpu-prof on gateway and wallet; prints the top self-time functions
  --database-url URL        PostgreSQL (DATABASE_URL, else postgres://postgres@127.0.0.1:5432/test)
  --out FILE                JSON results (bench/results/<timestamp>.json)
  --max-run S               give up (cleanly, exit 1) after this many seconds (290)
  --gateway-entry FILE      run this instead of gateway/dist/server.js (to measure a patched copy)
  --wallet-entry FILE       run this instead of wallet-service/dist/server.js
  --gateway-node-args "..." extra node flags for the gateway (e.g. "--max-semi-space-size=8")
  --wallet-node-args "..."  extra node flags for the wallet
`;

export function parseOptions(argv: string[], env: NodeJS.ProcessEnv): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      connections: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      paths: { type: 'string' },
      'no-baselines': { type: 'boolean' },
      'no-overload': { type: 'boolean' },
      'overload-duration': { type: 'string' },
      'overload-factor': { type: 'string' },
      'open-loop': { type: 'string' },
      'overload-path': { type: 'string' },
      players: { type: 'string' },
      'deadline-ms': { type: 'string' },
      'log-level': { type: 'string' },
      profile: { type: 'boolean' },
      'database-url': { type: 'string' },
      out: { type: 'string' },
      'max-run': { type: 'string' },
      'gateway-entry': { type: 'string' },
      'wallet-entry': { type: 'string' },
      'gateway-node-args': { type: 'string' },
      'wallet-node-args': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(HELP);
    process.exit(0);
  }
  const pick = (name: string): string | undefined => {
    const flag = (values as Record<string, string | boolean | undefined>)[name];
    if (typeof flag === 'string') return flag;
    const fromEnv = env[`BENCH_${name.toUpperCase().replace(/-/g, '_')}`];
    return fromEnv === undefined || fromEnv === '' ? undefined : fromEnv;
  };
  const number = (name: string, fallback: number, min: number, max: number): number => {
    const text = pick(name);
    if (text === undefined) return fallback;
    const value = Number(text);
    if (!Number.isFinite(value) || value < min || value > max) {
      throw new Error(`--${name} must be a number from ${min} to ${max}, got "${text}"`);
    }
    return value;
  };
  const flag = (name: string): boolean => {
    if ((values as Record<string, unknown>)[name] === true) return true;
    const fromEnv = env[`BENCH_${name.toUpperCase().replace(/-/g, '_')}`];
    return fromEnv === '1' || fromEnv === 'true';
  };

  const pathText = pick('paths');
  let paths: PathName[] = [...ALL_PATHS];
  if (pathText !== undefined) {
    const wanted = pathText.split(',').map((path) => path.trim());
    for (const path of wanted) {
      if (!(ALL_PATHS as readonly string[]).includes(path)) {
        throw new Error(`--paths: unknown path "${path}" (known: ${ALL_PATHS.join(', ')})`);
      }
    }
    if (wanted.some((path) => path === 'replay' || path === 'win' || path === 'refund')) wanted.push('bet');
    paths = ALL_PATHS.filter((path) => wanted.includes(path));
  }
  const overloadPath = pick('overload-path') ?? 'bet';
  if (overloadPath !== 'bet' && overloadPath !== 'balance') throw new Error('--overload-path must be bet or balance');

  return {
    connections: number('connections', 64, 1, 4096),
    durationS: number('duration', 10, 1, 600),
    warmupS: number('warmup', 2, 0, 60),
    paths,
    baselines: !flag('no-baselines'),
    overload: !flag('no-overload'),
    overloadDurationS: number('overload-duration', 10, 1, 120),
    overloadFactor: number('overload-factor', 2, 1.2, 50),
    overloadPath,
    openLoopS: number('open-loop', 5, 0, 120),
    players: number('players', 512, 1, 100_000),
    deadlineMs: number('deadline-ms', Number(env.WALLET_DEADLINE_MS || 2000), 50, 4500),
    logLevel: pick('log-level') ?? 'info',
    profile: flag('profile'),
    databaseUrl:
      pick('database-url') ?? env.DATABASE_URL ?? env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
    out: pick('out'),
    maxRunS: number('max-run', 290, 30, 3600),
    gatewayEntry: pick('gateway-entry'),
    walletEntry: pick('wallet-entry'),
    gatewayNodeArgs: (pick('gateway-node-args') ?? '').split(' ').filter((arg) => arg !== ''),
    walletNodeArgs: (pick('wallet-node-args') ?? '').split(' ').filter((arg) => arg !== ''),
  };
}
