/**
 * `npm run bench`: the benchmark suite of issue 6. Starts the real stack on 127.0.0.1 (own
 * redis-server, wallet on PostgreSQL in a schema of its own, gateway in signature mode), funds
 * players, then drives signed PHIA requests with autocannon for each path, measures the baselines
 * in the same run, a lone bet and open-loop bets (fixed arrival rates, latency from each scheduled
 * send), runs an open-loop overload, checks the books, prints a table and writes JSON to
 * bench/results/. Exits non-zero when the books or the answers fail, or an issue 14 target is missed
 * (issue 6 and 12 targets are reported only). `npm run bench -- --help` lists the options.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { connect, type Socket } from 'node:net';
import { join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type autocannon from 'autocannon';
import type { Redis } from 'ioredis';
import pg from 'pg';
import { bareSqlBaselines, type BareOpenLoop } from './baselines/bare-sql.js';
import { checkBooks, type BooksCheck } from './lib/books.js';
import { loneBets, type LoneBetResult } from './lib/lone-bet.js';
import { runLoad, type LoadResult } from './lib/load.js';
import { runOpenLoop, type OpenLoopResult } from './lib/open-loop.js';
import { parseOptions, type PathName } from './lib/options.js';
import {
  balanceRequests,
  betRequests,
  fixedRequests,
  headers,
  openLoopBalances,
  openLoopBets,
  Outcomes,
  replayRequests,
  settleRequests,
  sign,
  type AnsweredBet,
  type Player,
} from './lib/phia.js';
import {
  cpuMeter,
  installSignalHandlers,
  machineCpu,
  onCleanup,
  round1,
  RssSampler,
  runCleanups,
  spawnNode,
  type Child,
} from './lib/proc.js';
import { printProfile, summarizeProfile, type ProfileSummary, type ProfileWindow } from './profile.js';
import {
  BASELINE_OF,
  formatTable,
  GATEWAY_RSS_TARGET_MB,
  ISSUE14,
  markdownTable,
  P99_TARGET_MS,
  type BaselineResult,
  type PathResult,
} from './lib/report.js';
import {
  gatewayMemory,
  gatewayQuiet,
  metricTotal,
  pendingVoids,
  ROOT,
  seedPlayers,
  startStack,
  type Stack,
} from './lib/stack.js';
import {
  issue14Targets,
  overloadTargets,
  ratioMargin,
  walletTargets,
  type Check,
  type LoneEcho,
  type OverloadResult,
} from './lib/targets.js';
import { redisAnswers, redisPerAnswer, sampleAnswerUsage } from './lib/redis-memory.js';

const startedAt = new Date();
const options = parseOptions(process.argv.slice(2), process.env);
const say = (line: string) => console.log(`[bench] ${line}`);
const elapsed = () => `${((Date.now() - startedAt.getTime()) / 1000).toFixed(0)}s`;

const checks: Check[] = [];
const check = (name: string, ok: boolean, detail: string) => {
  checks.push({ name, ok, detail });
  say(`${ok ? 'ok  ' : 'FAIL'} ${name}: ${detail}`);
};

installSignalHandlers();
const watchdog = setTimeout(() => {
  console.error(`[bench] still running after ${options.maxRunS} s: giving up`);
  void runCleanups().finally(() => process.exit(1));
}, options.maxRunS * 1000);
watchdog.unref();

const runId = randomBytes(3).toString('hex');
const logDir = mkdtempSync(join(tmpdir(), 'phia-bench-'));
const profileDir = join(logDir, 'profiles');
const nodeArgs = options.profile ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
/** --profile: the baselines' server processes and their measured runs, profiled like gateway and wallet. */
const baselineProfiles: { name: string; pid: number; window: ProfileWindow }[] = [];

async function main(): Promise<number> {
  say(
    `connections ${options.connections}, ${options.durationS} s per path (+${options.warmupS} s warm-up), paths ${options.paths.join(',')}, logs in ${logDir}`,
  );
  const machine = await machineInfo();
  say(`${machine.nproc} cores, ${machine.cpu}, node ${machine.node}, PostgreSQL ${machine.postgres}`);

  const stack = await startStack({
    databaseUrl: options.databaseUrl,
    deadlineMs: options.deadlineMs,
    logLevel: options.logLevel,
    logDir,
    nodeArgs,
    gatewayEntry: options.gatewayEntry,
    walletEntry: options.walletEntry,
    gatewayNodeArgs: options.gatewayNodeArgs,
    walletNodeArgs: options.walletNodeArgs,
  });
  machine.redis = await redisVersion(stack.redis);
  say(`stack up (${elapsed()}): gateway ${stack.gatewayUrl}, wallet ${stack.walletAddress}, schema ${stack.schema}`);
  const sampler = new RssSampler({ gateway: stack.gateway.pid, wallet: stack.walletProcess.pid });
  const rssAtStart = sampler.now();
  const peakRss = { gateway: 0, wallet: 0 };
  const rssWindow = () => {
    const window = sampler.window();
    peakRss.gateway = Math.max(peakRss.gateway, window.gateway ?? 0);
    peakRss.wallet = Math.max(peakRss.wallet, window.wallet ?? 0);
    return { gateway: window.gateway ?? 0, wallet: window.wallet ?? 0 };
  };
  let gatewayLoadedS = 0;

  const players = await seedPlayers(stack.wallet, runId, options.players);
  say(`${players.length} players funded, sessions open (${elapsed()})`);

  const baselines: Record<string, BaselineResult> = {};
  const paths: PathResult[] = [];
  const moneyPhases: { tag: string; kind: 'bet' | 'win' | 'refund'; outcomes: Outcomes }[] = [];
  const bets: AnsweredBet[] = [];
  const notes: string[] = [];
  /** Measured run of each path on the monotonic clock of the CPU profiles (--profile: a summary per path). */
  const pathWindows: Partial<Record<PathName, ProfileWindow>> = {};

  /** Warm-up (unmeasured), then the measured run; RSS peak of the measured run only. */
  const measure = async (
    url: string,
    warmup: autocannon.Request[] | undefined,
    requests: autocannon.Request[],
  ): Promise<{
    load: LoadResult;
    rssMb: { gateway: number; wallet: number };
    cpuUs: { gateway: number; wallet: number; generator: number };
    machine: { busyPct: number; stealPct: number };
    window: ProfileWindow;
  }> => {
    if (options.warmupS > 0 && warmup !== undefined) {
      await runLoad({ url, connections: options.connections, durationS: options.warmupS, requests: warmup });
    }
    await gatewayQuiet(url);
    rssWindow();
    const cpu = cpuMeter({ gateway: stack.gateway.pid, wallet: stack.walletProcess.pid, generator: process.pid });
    const machineMeter = machineCpu();
    const fromUs = monotonicUs();
    const load = await runLoad({ url, connections: options.connections, durationS: options.durationS, requests });
    const used = cpu(load.responses);
    return {
      load,
      rssMb: rssWindow(),
      cpuUs: { gateway: used.gateway ?? NaN, wallet: used.wallet ?? NaN, generator: used.generator ?? NaN },
      machine: machineMeter(),
      window: { fromUs, toUs: monotonicUs() },
    };
  };

  const runPath = async (
    path: PathName,
    warmup: autocannon.Request[],
    requests: autocannon.Request[],
    extra: string[] = [],
  ) => {
    const { load, rssMb, cpuUs, machine, window } = await measure(stack.gatewayUrl, warmup, requests);
    pathWindows[path] = window;
    gatewayLoadedS += load.durationS + options.warmupS;
    const { baseline, target } = BASELINE_OF[path];
    const base = baselines[baseline];
    const result: PathResult = {
      path,
      load,
      baseline: base === undefined ? undefined : baseline,
      ratio: base === undefined || base.rps === 0 ? undefined : Math.round((1000 * load.okRps) / base.rps) / 1000,
      target,
      rssMb,
      cpuUsPerRequest: { gateway: cpuUs.gateway, wallet: cpuUs.wallet },
      generatorCpuUsPerRequest: cpuUs.generator,
      machine,
      notes: extra,
    };
    paths.push(result);
    say(
      `${path}: ${load.okRps} req/s, p50 ${load.latencyMs.p50} ms, p99 ${load.latencyMs.p99} ms, max ${load.latencyMs.max} ms, non-2xx ${load.non2xx}, errors ${load.errors}, CPU/request gateway ${cpuUs.gateway} µs wallet ${cpuUs.wallet} µs generator ${cpuUs.generator} µs, machine ${machine.busyPct}% busy (steal ${machine.stealPct}%)${result.ratio === undefined ? '' : `, ${Math.round(result.ratio * 100)}% of ${baseline}`} (${elapsed()})`,
    );
    if (load.non2xx > 0) say(`  ${path} status codes: ${JSON.stringify(load.statusCodes)}`);
    return result;
  };

  const money = (kind: 'bet' | 'win' | 'refund', tag: string) => {
    const outcomes = new Outcomes();
    moneyPhases.push({ tag, kind, outcomes });
    return { key: stack.key, players, tag, outcomes };
  };

  // 1. gRPC echo baseline, then balance (divided by it).
  if (options.baselines && options.paths.includes('balance')) {
    baselines['grpc-echo'] = await grpcEchoBaseline(players, stack.key);
  }
  if (options.paths.includes('balance')) {
    await runPath('balance', balanceRequests(stack.key, players), balanceRequests(stack.key, players));
  }

  // 2. The bare SQL bet (pgbench) and the wallet's own bet loop, then bet, one-player, win, refund.
  const wantsMoney = options.paths.some((path) => path !== 'balance' && path !== 'replay');
  let bareOpenLoop: BareOpenLoop[] = [];
  if (options.baselines && wantsMoney) {
    const bare = await bareSqlBaselines({
      databaseUrl: options.databaseUrl,
      clients: 32,
      durationS: options.durationS,
      warmupS: options.warmupS,
      openLoopShares: ISSUE14.openLoopShares,
      openLoopS: options.openLoopS,
    });
    if ('missing' in bare) {
      notes.push(bare.missing);
      say(bare.missing);
    } else {
      baselines['bare-sql'] = bare.bet;
      baselines['bare-one-row'] = bare.oneRow;
      baselines['bare-one-row-2'] = bare.oneRowPair;
      bareOpenLoop = bare.openLoop;
      for (const run of bare.openLoop) {
        say(
          `baseline bare-sql open loop at ${Math.round(run.share * 100)}% of its rate (${run.rate}/s): p50 ${run.latencyMs.p50} ms, p99 ${run.latencyMs.p99} ms, max ${run.latencyMs.max} ms, ${run.tps} tps`,
        );
      }
      say(
        `baseline bare-sql: ${bare.bet.rps} bets/s at 32 clients; bare-one-row: ${bare.oneRow.rps}/s at 1 client, ${bare.oneRow.latencyMs.p50} ms average, ${bare.oneRowPair.rps}/s at 2 clients (${elapsed()})`,
      );
    }
    baselines['db-bet'] = await dbBetBaseline(stack);
  }

  const redisBefore = await redisAnswers(stack.redis);
  if (options.paths.includes('bet')) {
    const warm = money('bet', `${runId}-betw`);
    const measured = money('bet', `${runId}-bet`);
    await runPath('bet', betRequests(warm, bets), betRequests(measured, bets));
  }
  if (options.paths.includes('one-player')) {
    // Every bet for one player: its account row lock serializes them all.
    const one = [players[0] as Player];
    const warm = { ...money('bet', `${runId}-onew`), players: one };
    const measured = { ...money('bet', `${runId}-one`), players: one };
    await runPath('one-player', betRequests(warm, []), betRequests(measured, []));
  }
  let loneBet: LoneBetResult | undefined;
  let loneEcho: LoneEcho | undefined;
  if (options.paths.includes('bet')) {
    loneBet = await loneBets(stack.wallet, players, {
      tag: `${runId}-lone`,
      durationS: Math.min(options.durationS, 5),
      warmupS: Math.min(options.warmupS, 1),
      deadlineMs: options.deadlineMs,
    });
    if (options.baselines) loneEcho = await loneEchoBaseline();
    say(
      `lone bet over gRPC, one at a time: p50 ${loneBet.latencyMs.p50} ms, average ${loneBet.latencyMs.avg} ms, p99 ${loneBet.latencyMs.p99} ms, ${loneBet.latencyMs.count} bets, errors ${loneBet.errors} (${elapsed()})`,
    );
  }
  let loneGatewayBet: LoadResult | undefined;
  const openLoop: { share: number; rate: number; result: OpenLoopResult }[] = [];
  const betPath = paths.find((result) => result.path === 'bet');
  if (betPath !== undefined) {
    // One bet at a time through the whole stack (one connection), against the bare one-row transaction.
    const lone = money('bet', `${runId}-gwlone`);
    loneGatewayBet = await runLoad({
      url: stack.gatewayUrl,
      connections: 1,
      durationS: Math.min(options.durationS, 5),
      requests: betRequests(lone, []),
    });
    say(
      `lone bet through the gateway, one connection: mean ${loneGatewayBet.latencyMs.mean} ms, p50 ${loneGatewayBet.latencyMs.p50} ms, p99 ${loneGatewayBet.latencyMs.p99} ms (${elapsed()})`,
    );
    // Latency as PHIA feels it: a fixed arrival rate, counted from each bet's scheduled send.
    for (const share of options.openLoopS > 0 ? ISSUE14.openLoopShares : []) {
      const rate = Math.max(1, Math.round(share * betPath.load.okRps));
      const result = await runOpenLoop({
        url: stack.gatewayUrl,
        rate,
        durationS: options.openLoopS,
        next: openLoopBets(money('bet', `${runId}-ol${Math.round(share * 100)}`)),
      });
      openLoop.push({ share, rate, result });
      say(
        `open loop at ${Math.round(share * 100)}% of the bet rate (${rate}/s): p50 ${result.latencyMs.p50} ms, p99 ${result.latencyMs.p99} ms, max ${result.latencyMs.max} ms, ${JSON.stringify(result.statusCodes)}, ${result.refused.count} refused, generator lag max ${result.maxSendLagMs} ms (${elapsed()})`,
      );
    }
  }
  if (options.paths.includes('win')) {
    const warm = money('win', `${runId}-winw`);
    const measured = money('win', `${runId}-win`);
    const counters = { tombstones: 0, next: 0 };
    await runPath('win', settleRequests('win', warm, bets, counters), settleRequests('win', measured, bets, counters));
  }
  if (options.paths.includes('refund')) {
    const warm = money('refund', `${runId}-rfw`);
    const measured = money('refund', `${runId}-rf`);
    // Refunds take the bets from the oldest; each bet is refunded once.
    const counters = { tombstones: 0, next: 0 };
    const result = await runPath(
      'refund',
      settleRequests('refund', warm, bets, counters),
      settleRequests('refund', measured, bets, counters),
    );
    if (counters.tombstones > 0) {
      const note = `refund: ${counters.tombstones} refunds named a bet never placed (tombstones: the run made more refunds than bets)`;
      result.notes.push(note);
      notes.push(note);
    }
  }

  // 3. Bare Fastify baseline, then duplicate replay (divided by it).
  if (options.baselines && options.paths.includes('replay')) {
    baselines.fastify = await fastifyBaseline(players, stack.key);
  }
  if (options.paths.includes('replay')) {
    if (bets.length === 0) throw new Error('replay: no bet was answered 200, nothing to replay');
    const warm = new Outcomes();
    const measured = new Outcomes();
    const result = await runPath('replay', replayRequests(bets, warm), replayRequests(bets, measured));
    const replayed = measured.replayedHeader;
    check(
      'replay answers are the first answers',
      measured.replayMismatches === 0 && warm.replayMismatches === 0,
      `${measured.replayMismatches + warm.replayMismatches} replays differed from the bet's first answer; ${replayed} of ${result.load.responses} carried idempotent-replayed`,
    );
  }
  const redisAfter = await redisAnswers(stack.redis);
  const redisMemory = redisPerAnswer(redisBefore, redisAfter, await sampleAnswerUsage(stack.redis));
  if (redisMemory.answers > 0) {
    say(
      `redis: ${redisMemory.answers} cached answers, ${redisMemory.bytesPerAnswer} bytes each (used_memory delta), MEMORY USAGE ${redisMemory.memoryUsageAvg} bytes`,
    );
  }
  const rssNow = sampler.now();
  const rssAfterPaths = {
    gateway: rssNow.gateway ?? NaN,
    wallet: rssNow.wallet ?? NaN,
    loadedSeconds: Math.round(gatewayLoadedS),
    gatewaySelfReportMb: await gatewayMemory(stack.gatewayUrl).catch(() => ({})),
  };
  say(`gateway memory after the paths: ${JSON.stringify(rssAfterPaths)}`);

  // 4. Overload.
  let overload: OverloadResult | undefined;
  if (options.overload) {
    overload = await overloadRun(stack, players, paths, money);
    gatewayLoadedS += overload.load.durationS;
  }

  // 5. Let queued voids reach the wallet, then stop everything and check the books.
  // The overload leaves thousands of voids queued (~100-150 delivered per second here): wait for them,
  // within what is left of the time budget, or the rule-5 check below cannot be decided.
  const budgetMs = options.maxRunS * 1000 - (Date.now() - startedAt.getTime()) - 40_000;
  const drained = await drainVoids(stack.gatewayUrl, Math.max(30_000, Math.min(150_000, budgetMs)));
  check('voids delivered', drained.pending === 0, `${drained.pending} pending after ${drained.waitedMs} ms`);
  const rssEnd = {
    gateway: sampler.now().gateway ?? NaN,
    wallet: sampler.now().wallet ?? NaN,
    loadedSeconds: Math.round(gatewayLoadedS),
  };
  sampler.stop();
  say(`stopping the stack (${elapsed()})`);
  await stack.stop();

  const books: BooksCheck = await checkBooks(options.databaseUrl, stack.schema, moneyPhases);
  check(
    'books balance',
    books.booksOk,
    books.booksOk
      ? `${books.counts.transactions} transactions, ${books.counts.entries} entries, ${books.counts.playerAccounts} players: entries sum to zero, balances match, none negative`
      : JSON.stringify(books.books).slice(0, 500),
  );
  const broken = books.phases.filter((phase) => !phase.ok);
  check(
    'exactly the requests answered 200 took effect',
    broken.length === 0,
    broken.length === 0
      ? `${books.phases.reduce((sum, phase) => sum + phase.answered200, 0)} answered 200, all applied; ${books.phases.reduce((sum, phase) => sum + phase.answeredError, 0)} answered with an error, none applied`
      : `${JSON.stringify(broken).slice(0, 500)}${drained.pending > 0 ? ` (${drained.pending} voids were still queued when the gateway stopped: these may be among them)` : ''}`,
  );
  await stack.dropSchema();

  let profiles: Record<string, ProfileSummary> | undefined;
  if (options.profile) profiles = summarizeProfiles(stack, pathWindows);

  // 6. Targets (reported, not fatal).
  const targets: Check[] = [];
  for (const result of paths) {
    if (result.target !== undefined) {
      targets.push({
        name: `${result.path} >= ${result.target * 100}% of ${result.baseline ?? BASELINE_OF[result.path].baseline}`,
        ok: result.ratio !== undefined && result.ratio >= result.target,
        detail:
          (result.ratio === undefined ? 'no baseline' : ratioMargin(result.ratio, result.target)) +
          besideNote(result, baselines),
      });
    }
    targets.push({
      name: `${result.path} p99 < ${P99_TARGET_MS} ms at ${options.connections} connections`,
      ok: result.load.latencyMs.p99 < P99_TARGET_MS,
      detail: `${result.load.latencyMs.p99} ms`,
    });
  }
  targets.push(...walletTargets(baselines, paths, loneBet, loneEcho));
  const issue14 = issue14Targets(baselines, paths, loneGatewayBet, openLoop, bareOpenLoop);
  if (overload !== undefined && overload.path === 'bet') issue14.push(...overloadTargets(overload));
  targets.push({
    name: `gateway RSS < ${GATEWAY_RSS_TARGET_MB} MB after the path runs (about 60 s under load by default)`,
    ok: rssAfterPaths.gateway < GATEWAY_RSS_TARGET_MB,
    detail: `${rssAfterPaths.gateway} MB after ${rssAfterPaths.loadedSeconds} s of path runs (${rssAtStart.gateway} MB at start, peak ${round1(peakRss.gateway)} MB during them${overload ? `, ${overload.rssMb.gateway} MB peak in the overload, ${rssEnd.gateway} MB at the end` : ''})`,
  });

  console.log('');
  console.log(formatTable(paths, baselines));
  console.log(
    `\nreq/s counts 2xx answers; ratio = path req/s / baseline req/s; '!' marks p99 >= ${P99_TARGET_MS} ms; RSS = peak during the measured run;\n` +
      'us/req = CPU time (user+system) per answer: gateway and wallet for paths; for baselines the server process (fastify, echo front, DB loop) and the echo server.',
  );
  console.log('\ntargets (issues 6 and 12, reported):');
  for (const target of targets) console.log(`  ${target.ok ? 'met   ' : 'MISSED'} ${target.name}: ${target.detail}`);
  console.log('\ntargets (issue 14: the exit status):');
  for (const target of issue14) console.log(`  ${target.ok ? 'met   ' : 'MISSED'} ${target.name}: ${target.detail}`);
  console.log('\nchecks:');
  for (const item of checks) console.log(`  ${item.ok ? 'ok  ' : 'FAIL'} ${item.name}: ${item.detail}`);
  if (profiles) for (const [name, summary] of Object.entries(profiles)) printProfile(name, summary);

  const out = options.out ?? join(ROOT, 'bench', 'results', `${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
  mkdirSync(join(out, '..'), { recursive: true });
  writeFileSync(
    out,
    `${JSON.stringify(
      {
        startedAt: startedAt.toISOString(),
        durationS: Math.round((Date.now() - startedAt.getTime()) / 1000),
        command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
        machine: { ...machine, loadavgEnd: loadavg().map((value) => Math.round(value * 100) / 100) },
        options,
        baselines,
        paths,
        loneBet,
        loneEcho,
        loneGatewayBet,
        openLoop,
        bareOpenLoop,
        overload,
        issue14,
        rss: {
          atStart: rssAtStart,
          peakMb: { gateway: round1(peakRss.gateway), wallet: round1(peakRss.wallet) },
          afterPaths: rssAfterPaths,
          end: rssEnd,
        },
        redis: redisMemory,
        books,
        targets,
        checks,
        notes,
        profiles,
        markdown: markdownTable(paths, baselines),
        logs: logDir,
      },
      null,
      2,
    )}\n`,
  );
  say(`results: ${relative(process.cwd(), out)} (${elapsed()})`);
  return checks.every((item) => item.ok) && issue14.every((item) => item.ok) ? 0 : 1;
}

// ---------------------------------------------------------------------------------------------
// Baselines

async function startChild(name: string, script: string, args: string[]): Promise<{ child: Child; port: number }> {
  const child = spawnNode(name, join(ROOT, 'bench', 'baselines', script), args, { nodeArgs });
  onCleanup(async () => void (await child.stop(3000)));
  const line = await child.waitForLine(/^READY \d+$/, 30_000);
  return { child, port: Number(line.split(' ')[1]) };
}

function baselineOf(name: string, describe: string, load: LoadResult, cpuUs: number): BaselineResult {
  return {
    name,
    describe,
    rps: load.okRps,
    cpuUsPerRequest: cpuUs,
    latencyMs: { p50: load.latencyMs.p50, p99: load.latencyMs.p99, max: load.latencyMs.max },
    non2xx: load.non2xx,
    errors: load.errors,
  };
}

async function fastifyBaseline(players: Player[], key: string): Promise<BaselineResult> {
  const { child, port } = await startChild('fastify-bare', 'fastify-bare.ts', []);
  const requests = fixedRequests('/bare', key, players[0] as Player);
  const url = `http://127.0.0.1:${port}`;
  if (options.warmupS > 0)
    await runLoad({ url, connections: options.connections, durationS: options.warmupS, requests });
  const cpu = cpuMeter({ server: child.pid });
  const fromUs = monotonicUs();
  const load = await runLoad({ url, connections: options.connections, durationS: options.durationS, requests });
  const cpuUs = cpu(load.responses).server ?? NaN;
  baselineProfiles.push({ name: 'baseline fastify', pid: child.pid, window: { fromUs, toUs: monotonicUs() } });
  await child.stop(3000);
  const result = baselineOf(
    'fastify',
    "bare Fastify POST route, the gateway's helmet plugin (headers computed once) + @fastify/under-pressure (sampling only), default JSON parser, no logging, fixed JSON answer; same bet-sized signed body (not verified); own process",
    load,
    cpuUs,
  );
  say(`baseline fastify: ${result.rps} req/s, p99 ${result.latencyMs.p99} ms (${elapsed()})`);
  return result;
}

async function grpcEchoBaseline(players: Player[], key: string): Promise<BaselineResult> {
  const server = await startChild('grpc-echo-server', 'grpc-echo.ts', ['server']);
  const front = await startChild('grpc-echo-front', 'grpc-echo.ts', ['front', String(server.port)]);
  const url = `http://127.0.0.1:${front.port}`;
  const requests = balanceRequests(key, players, '/echo');
  if (options.warmupS > 0)
    await runLoad({ url, connections: options.connections, durationS: options.warmupS, requests });
  const cpu = cpuMeter({ front: front.child.pid, server: server.child.pid });
  const fromUs = monotonicUs();
  const load = await runLoad({ url, connections: options.connections, durationS: options.durationS, requests });
  const used = cpu(load.responses);
  const window = { fromUs, toUs: monotonicUs() };
  baselineProfiles.push({ name: 'baseline grpc-echo front', pid: front.child.pid, window });
  baselineProfiles.push({ name: 'baseline grpc-echo server', pid: server.child.pid, window });
  await front.child.stop(3000);
  await server.child.stop(3000);
  const result = baselineOf(
    'grpc-echo',
    'Fastify route (same plugins, own process) making one grpc-js unary call per request on one channel to an echo server (own process) that answers at once; balance bodies',
    load,
    used.front ?? NaN,
  );
  result.cpuUsPerRequestEchoServer = used.server ?? NaN;
  say(`baseline grpc-echo: ${result.rps} req/s, p99 ${result.latencyMs.p99} ms (${elapsed()})`);
  return result;
}

/** The path's rate against the limit printed beside its target (BASELINE_OF's `beside`), if any. */
function besideNote(result: PathResult, baselines: Record<string, BaselineResult>): string {
  const name = BASELINE_OF[result.path].beside;
  const other = name === undefined ? undefined : baselines[name];
  if (other === undefined || other.rps === 0) return '';
  return `; ${name}: ${other.rps}/s, ${Math.round((100 * result.load.okRps) / other.rps)}% of it`;
}

/** One gRPC echo at a time, from a process of its own: the floor of one unary call's latency here. */
async function loneEchoBaseline(): Promise<LoneEcho> {
  const server = await startChild('grpc-echo-server', 'grpc-echo.ts', ['server']);
  const seconds = String(Math.min(options.durationS, 5));
  const warmup = String(Math.min(options.warmupS, 1));
  const lone = spawnNode('grpc-echo-lone', join(ROOT, 'bench', 'baselines', 'grpc-echo.ts'), [
    'lone',
    String(server.port),
    seconds,
    warmup,
  ]);
  onCleanup(async () => void (await lone.stop(3000)));
  const line = await lone.waitForLine(/^LONE \{/, 60_000);
  await lone.stop(3000);
  await server.child.stop(3000);
  const result = JSON.parse(line.slice('LONE '.length)) as LoneEcho;
  say(
    `baseline lone gRPC echo, one call at a time: p50 ${result.p50} ms, average ${result.avg} ms, p99 ${result.p99} ms`,
  );
  return result;
}

async function dbBetBaseline(stack: Stack): Promise<BaselineResult> {
  const child = spawnNode('db-bet', join(ROOT, 'bench', 'baselines', 'db-bet.ts'), [
    JSON.stringify({
      databaseUrl: options.databaseUrl,
      schema: stack.schema,
      poolSize: Number(process.env.DB_POOL_SIZE || 16),
      workers: options.connections,
      durationS: options.durationS,
      warmupS: options.warmupS,
      players: options.players,
      deadlineMs: options.deadlineMs,
      tag: `${runId}-db`,
    }),
  ]);
  onCleanup(async () => void (await child.stop(3000)));
  const line = await child.waitForLine(/^RESULT /, (options.durationS + options.warmupS + 60) * 1000);
  await child.exited;
  const parsed = JSON.parse(line.slice('RESULT '.length)) as {
    rps: number;
    latencyMs: { p50: number; p99: number; max: number };
    errors: number;
    errorCodes: Record<string, number>;
    cpuUsPerBet: number;
  };
  const result: BaselineResult = {
    name: 'db-bet',
    describe: `the wallet's Ledger.bet on PostgreSQL (same SQL, pool of ${Number(process.env.DB_POOL_SIZE || 16)} like the wallet, same deadline), ${options.connections} concurrent loops in one process, no HTTP or gRPC`,
    rps: parsed.rps,
    cpuUsPerRequest: parsed.cpuUsPerBet,
    latencyMs: parsed.latencyMs,
    non2xx: 0,
    errors: parsed.errors,
  };
  say(
    `baseline db-bet: ${result.rps} bets/s, p99 ${result.latencyMs.p99} ms, errors ${parsed.errors} ${parsed.errors > 0 ? JSON.stringify(parsed.errorCodes) : ''}(${elapsed()})`,
  );
  return result;
}

// ---------------------------------------------------------------------------------------------
// Overload

async function overloadRun(
  stack: Stack,
  players: Player[],
  paths: PathResult[],
  money: (kind: 'bet', tag: string) => { key: string; players: Player[]; tag: string; outcomes: Outcomes },
): Promise<OverloadResult> {
  const limitMs = options.deadlineMs + 100;
  const measured = paths.find((result) => result.path === options.overloadPath);
  const capacityRps = measured?.load.okRps ?? 500;
  const rate = Math.round(options.overloadFactor * capacityRps);
  // Bets are tracked as a money phase (rule 5 is checked on them afterwards).
  const spec = options.overloadPath === 'bet' ? money('bet', `${runId}-ovl`) : undefined;
  say(
    `overload: open loop at ${rate} ${options.overloadPath}/s for ${options.overloadDurationS} s (${options.overloadFactor} x the measured ${capacityRps}/s, deadline ${options.deadlineMs} ms)`,
  );
  const sampler = new RssSampler({ gateway: stack.gateway.pid, wallet: stack.walletProcess.pid });
  const refusals = async () => (await metricTotal(stack.gatewayUrl, 'phia_admission_refusals_total')) ?? 0;
  const refusalsBefore = await refusals();
  const cpu = cpuMeter({ gateway: stack.gateway.pid, wallet: stack.walletProcess.pid, generator: process.pid });
  const machineMeter = machineCpu();
  const load = await runOpenLoop({
    url: stack.gatewayUrl,
    rate,
    durationS: options.overloadDurationS,
    next: spec === undefined ? openLoopBalances(stack.key, players) : openLoopBets(spec),
    timeoutMs: 10_000,
  });
  const cpuTotalUs = cpu(1);
  const machine = machineMeter();
  const refusedByAdmission = (await refusals()) - refusalsBefore;
  const connectionRefusal = await connectionRefusalCost(stack);
  const maxUnansweredAgeMs = spec?.outcomes.maxPendingAgeMs() ?? 0;
  const recovery = {
    bet: await oneBet(stack, players[0] as Player),
    balance: await oneBalance(stack, players[1] ?? (players[0] as Player)),
  };
  const window = sampler.window();
  sampler.stop();

  const served = load.statusCodes['200'] ?? 0;
  const excess = load.sent - served - load.timeouts;
  // CPU per refused request, roughly: what the gateway spent beyond the served requests at the path's
  // own cost (reported; the check uses the refusal at accept measured on its own).
  const servedUs = measured?.cpuUsPerRequest.gateway ?? NaN;
  const refusalUs = excess > 0 ? ((cpuTotalUs.gateway ?? NaN) - served * servedUs) / excess : 0;
  const result: OverloadResult = {
    path: options.overloadPath,
    offeredRps: rate,
    capacityRps,
    load,
    maxUnansweredAgeMs,
    limitMs,
    refusedByAdmission,
    cpuUs: {
      gatewayTotal: cpuTotalUs.gateway ?? NaN,
      perRefusalResidual: Math.round(refusalUs),
      perRefusal: connectionRefusal.cpuUsPerRefusal,
      perServed: servedUs,
    },
    connectionRefusal,
    recovery,
    rssMb: { gateway: window.gateway ?? 0, wallet: window.wallet ?? 0 },
    generatorCpuMsPerS: Math.round((cpuTotalUs.generator ?? NaN) / 1000 / load.durationS),
    machine,
  };
  say(
    `overload: ${load.sent} sent, ${load.answered} answered (${JSON.stringify(load.statusCodes)}), ${load.refused.count} connections closed unanswered (p99 ${load.refused.p99} ms after the scheduled send, ${load.refusedFromSend.p99} ms after the generator sent), ${load.timeouts} timeouts; 200s ${load.okRps}/s; answers p50 ${load.latencyMs.p50} ms, p99 ${load.latencyMs.p99} ms, max ${load.latencyMs.max} ms; generator lag max ${load.maxSendLagMs} ms, generator CPU ${result.generatorCpuMsPerS} ms/s, machine ${machine.busyPct}% busy (steal ${machine.stealPct}%); gateway CPU ${Math.round((cpuTotalUs.gateway ?? 0) / 1000)} ms (residual estimate ${result.cpuUs.perRefusalResidual} µs per refused request); refusal at accept measured alone: ${connectionRefusal.cpuUsPerRefusal} µs each (${connectionRefusal.refusals} connections past the cap of ${connectionRefusal.cap})`,
  );
  for (const [status, stats] of Object.entries(load.latencyByStatus)) {
    say(`  ${status}: ${stats.count} answers, p50 ${stats.p50} ms, p99 ${stats.p99} ms, max ${stats.max} ms`);
  }
  return result;
}

/**
 * The gateway's CPU per connection refused at accept: its connection cap filled with idle connections,
 * then new ones opened (each closed by the gateway at once), 50 at a time.
 */
async function connectionRefusalCost(
  stack: Stack,
): Promise<{ cap: number; refusals: number; cpuUsPerRefusal: number }> {
  const port = Number(new URL(stack.gatewayUrl).port);
  /** A new connection: open (kept) or closed by the gateway within 50 ms. */
  const open = () =>
    new Promise<Socket | undefined>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      let closed = false;
      socket.once('close', () => {
        closed = true;
        resolve(undefined);
      });
      socket.once('error', () => undefined);
      socket.once('connect', () => setTimeout(() => resolve(closed ? undefined : socket), 50));
    });
  const held: Socket[] = [];
  try {
    for (let batch = 0; batch < 100; batch++) {
      const opened = await Promise.all(Array.from({ length: 64 }, open));
      const kept = opened.filter((socket): socket is Socket => socket !== undefined);
      held.push(...kept);
      if (kept.length < opened.length) break;
    }
    const refusals = 1000;
    const cpu = cpuMeter({ gateway: stack.gateway.pid });
    for (let done = 0; done < refusals; done += 50) {
      const opened = await Promise.all(Array.from({ length: 50 }, open));
      for (const socket of opened) if (socket !== undefined) held.push(socket);
    }
    return { cap: held.length, refusals, cpuUsPerRefusal: cpu(refusals).gateway ?? NaN };
  } finally {
    for (const socket of held) socket.destroy();
  }
}

async function post(url: string, body: string, key: string): Promise<{ status: number; ms: number }> {
  const started = performance.now();
  try {
    const response = await fetch(url, {
      method: 'POST',
      headers: headers(sign(key, body)),
      body,
      signal: AbortSignal.timeout(10_000),
    });
    await response.text();
    return { status: response.status, ms: Math.round(performance.now() - started) };
  } catch {
    return { status: 0, ms: Math.round(performance.now() - started) };
  }
}

function oneBet(stack: Stack, player: Player): Promise<{ status: number; ms: number }> {
  const body = JSON.stringify({
    user_id: player.user_id,
    currency: 'USD',
    session_id: player.session_id,
    game_id: 'crash',
    game_session_id: player.game_session_id,
    round_id: `${runId}-after-r`,
    tx_id: `${runId}-after`,
    amount: '1.00',
  });
  return post(`${stack.gatewayUrl}/phia/bet`, body, stack.key);
}

function oneBalance(stack: Stack, player: Player): Promise<{ status: number; ms: number }> {
  const body = JSON.stringify({ user_id: player.user_id, currency: 'USD', session_id: player.session_id });
  return post(`${stack.gatewayUrl}/phia/balance`, body, stack.key);
}

async function drainVoids(gatewayUrl: string, timeoutMs: number): Promise<{ pending: number; waitedMs: number }> {
  const started = Date.now();
  let pending = NaN;
  while (Date.now() - started < timeoutMs) {
    try {
      pending = await pendingVoids(gatewayUrl);
    } catch {
      pending = NaN;
    }
    if (pending === 0) break;
    await sleep(500);
  }
  return { pending, waitedMs: Date.now() - started };
}

// ---------------------------------------------------------------------------------------------
// Machine and profiles

async function machineInfo() {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const require = createRequire(import.meta.url);
  const version = (name: string) => {
    try {
      return (require(`${name}/package.json`) as { version: string }).version;
    } catch {
      return 'unknown';
    }
  };
  let postgres = 'unknown';
  const client = new pg.Client({ connectionString: options.databaseUrl });
  try {
    await client.connect();
    postgres = ((await client.query('SHOW server_version')).rows[0] as { server_version: string }).server_version;
  } finally {
    await client.end().catch(() => {});
  }
  return {
    nproc: availableParallelism(),
    cpu: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? 'unknown',
    memoryGb: Math.round(
      Number(/^MemTotal:\s+(\d+)/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0) / 1024 / 1024,
    ),
    node: process.version,
    postgres,
    redis: 'unknown',
    packages: {
      autocannon: version('autocannon'),
      fastify: version('fastify'),
      '@grpc/grpc-js': version('@grpc/grpc-js'),
      pg: version('pg'),
      ioredis: version('ioredis'),
    },
    loadavgStart: loadavg().map((value) => Math.round(value * 100) / 100),
  };
}

async function redisVersion(redis: Redis): Promise<string> {
  return /^redis_version:(\S+)/m.exec(await redis.info('server'))?.[1] ?? 'unknown';
}

/** Microseconds on the clock of V8's CPU profiles (CLOCK_MONOTONIC, as process.hrtime on Linux). */
function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/**
 * The whole profile of gateway and wallet, then one summary per measured path run (its warm-up
 * left out): `gateway balance`, `wallet bet`, ...
 */
function summarizeProfiles(
  stack: Stack,
  pathWindows: Partial<Record<PathName, ProfileWindow>>,
): Record<string, ProfileSummary> {
  const result: Record<string, ProfileSummary> = {};
  let files: string[] = [];
  try {
    files = readdirSync(profileDir).filter((file) => file.endsWith('.cpuprofile'));
  } catch {
    say(`no profiles in ${profileDir}`);
  }
  for (const [name, pid] of [
    ['gateway', stack.gateway.pid],
    ['wallet', stack.walletProcess.pid],
  ] as const) {
    const file = files.find((candidate) => candidate.includes(`.${pid}.0.`));
    if (file === undefined) {
      say(`no CPU profile of the ${name} (pid ${pid}) in ${profileDir}`);
      continue;
    }
    result[name] = summarizeProfile(join(profileDir, file), 25);
    for (const [path, window] of Object.entries(pathWindows)) {
      result[`${name} ${path}`] = summarizeProfile(join(profileDir, file), 25, window);
    }
  }
  for (const { name, pid, window } of baselineProfiles) {
    // The main thread's profile (tsx's loader thread writes one too).
    const file = files.find((candidate) => candidate.includes(`.${pid}.0.`));
    if (file === undefined) say(`no CPU profile of the ${name} (pid ${pid}) in ${profileDir}`);
    else result[name] = summarizeProfile(join(profileDir, file), 25, window);
  }
  return result;
}

main()
  .then(async (code) => {
    await runCleanups();
    process.exit(code);
  })
  .catch(async (error: unknown) => {
    console.error(`[bench] failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    await runCleanups();
    process.exit(1);
  });
