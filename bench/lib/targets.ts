/**
 * The targets of issues 12 and 14 as checks with their margins: each against its baseline of the same
 * run (the bare SQL bet, the gRPC echo, bare Fastify, the bare one-row transaction).
 */
import type { BareOpenLoop } from '../baselines/bare-sql.js';
import type { LoadResult } from './load.js';
import type { LoneBetResult } from './lone-bet.js';
import type { OpenLoopResult } from './open-loop.js';
import type { PathName } from './options.js';
import { round1 } from './proc.js';
import {
  DB_BET_TARGET,
  ISSUE14,
  LONE_BET_TARGET_MS,
  OVERLOAD_REFUSAL_COST,
  OVERLOAD_THROUGHPUT,
  REFUSED_AT_ONCE_MS,
  WALLET_CPU_PER_BET_TARGET_US,
  type BaselineResult,
  type PathResult,
} from './report.js';

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

export interface OverloadResult {
  path: 'bet' | 'balance';
  offeredRps: number;
  /** The path's measured rate (closed loop, --connections). */
  capacityRps: number;
  load: OpenLoopResult;
  /** Oldest bet still unanswered when the run ended (ms). */
  maxUnansweredAgeMs: number;
  limitMs: number;
  refusedByAdmission: number;
  cpuUs: { gatewayTotal: number; perRefusalResidual: number; perRefusal: number; perServed: number };
  connectionRefusal: { cap: number; refusals: number; cpuUsPerRefusal: number };
  recovery: { bet: { status: number; ms: number }; balance: { status: number; ms: number } };
  rssMb: { gateway: number; wallet: number };
  /** The load generator's own CPU (ms per second of the run), and the machine's. */
  generatorCpuMsPerS: number;
  machine: { busyPct: number; stealPct: number };
}

export interface LoneEcho {
  count: number;
  p50: number;
  avg: number;
  p99: number;
}

function r2(value: number): number {
  return Math.round(value * 100) / 100;
}

/** Issue 14's targets besides the overload: gateway CPU, the path ratios, open-loop p99, the lone bet. */
export function issue14Targets(
  baselines: Record<string, BaselineResult>,
  paths: PathResult[],
  loneGatewayBet: LoadResult | undefined,
  openLoop: { share: number; rate: number; result: OpenLoopResult }[],
  bareOpenLoop: BareOpenLoop[],
): Check[] {
  const targets: Check[] = [];
  const path = (name: PathName) => paths.find((result) => result.path === name);
  const cpu = (name: PathName, limit: number) => {
    const result = path(name);
    if (result === undefined) return;
    const used = result.cpuUsPerRequest.gateway;
    targets.push({
      name: `gateway CPU per ${name} <= ${limit} µs`,
      ok: used <= limit,
      detail: `${used} µs (margin ${limit - used} µs)`,
    });
  };
  cpu('bet', ISSUE14.gatewayCpuPerBetUs);
  cpu('replay', ISSUE14.gatewayCpuPerReplayUs);
  for (const [name, baseline, target] of [
    ['bet', 'bare-sql', ISSUE14.betOfBareSql],
    ['balance', 'grpc-echo', ISSUE14.balanceOfEcho],
    ['replay', 'fastify', ISSUE14.replayOfFastify],
  ] as const) {
    const result = path(name);
    const base = baselines[baseline];
    if (result === undefined || base === undefined || base.rps === 0) continue;
    const ratio = result.load.okRps / base.rps;
    targets.push({
      name: `${name} >= ${target * 100}% of ${baseline}`,
      ok: ratio >= target,
      detail: `${ratioMargin(ratio, target)} (${result.load.okRps} of ${base.rps}/s)`,
    });
  }
  const half = openLoop.find((run) => run.share === 0.5);
  for (const run of openLoop) {
    const p99 = run.result.latencyMs.p99;
    const judged = run === half;
    const bare = bareOpenLoop.find((other) => other.share === run.share);
    const limit =
      bare === undefined
        ? ''
        : `; the bare SQL bet at ${run.share * 100}% of its own rate (${bare.rate}/s): p50 ${bare.latencyMs.p50} ms, p99 ${bare.latencyMs.p99} ms`;
    targets.push({
      name: `bet p99 open loop at ${run.share * 100}% of capacity (${run.rate}/s)${judged ? ` < ${ISSUE14.openLoopP99Ms} ms` : ' (reported)'}`,
      ok: !judged || (p99 < ISSUE14.openLoopP99Ms && run.result.refused.count === 0 && run.result.timeouts === 0),
      detail: `p50 ${run.result.latencyMs.p50} ms, p99 ${p99} ms${judged ? ` (margin ${round1(ISSUE14.openLoopP99Ms - p99)} ms)` : ''}, ${JSON.stringify(run.result.statusCodes)}, ${run.result.refused.count} refused${limit}`,
    });
  }
  const oneRow = baselines['bare-one-row'];
  if (loneGatewayBet !== undefined && oneRow !== undefined) {
    const limit = ISSUE14.loneBetOfOneRow * oneRow.latencyMs.p50;
    targets.push({
      name: `lone bet through the gateway, mean <= ${ISSUE14.loneBetOfOneRow} x the bare SQL transaction at 1 client`,
      ok: loneGatewayBet.latencyMs.mean <= limit,
      detail: `${loneGatewayBet.latencyMs.mean} ms against ${r2(limit)} ms (2 x ${oneRow.latencyMs.p50} ms; margin ${r2(limit - loneGatewayBet.latencyMs.mean)} ms)`,
    });
  }
  return targets;
}

/** "74% (margin +4 points)": a ratio and how far it is above (+) or below (-) its target. */
export function ratioMargin(ratio: number, target: number): string {
  const points = Math.round((ratio - target) * 100);
  return `${Math.round(ratio * 100)}% (margin ${points >= 0 ? '+' : ''}${points} points)`;
}

/** Issue 12's targets besides the path ratios: the wallet's own bet loop, its CPU per bet, a lone bet. */
export function walletTargets(
  baselines: Record<string, BaselineResult>,
  paths: PathResult[],
  loneBet: LoneBetResult | undefined,
  loneEcho: LoneEcho | undefined,
): Check[] {
  const targets: Check[] = [];
  const dbBet = baselines['db-bet'];
  const bare = baselines['bare-sql'];
  if (dbBet !== undefined && bare !== undefined && bare.rps > 0) {
    const ratio = dbBet.rps / bare.rps;
    targets.push({
      name: `the wallet's own bet loop (db-bet) >= ${DB_BET_TARGET * 100}% of bare-sql`,
      ok: ratio >= DB_BET_TARGET,
      detail: `${ratioMargin(ratio, DB_BET_TARGET)} (${dbBet.rps} of ${bare.rps} bets/s)`,
    });
  }
  const bet = paths.find((result) => result.path === 'bet');
  if (bet !== undefined) {
    targets.push({
      name: `wallet CPU per bet (bet path) <= ${WALLET_CPU_PER_BET_TARGET_US} µs`,
      ok: bet.cpuUsPerRequest.wallet <= WALLET_CPU_PER_BET_TARGET_US,
      detail: `${bet.cpuUsPerRequest.wallet} µs (margin ${WALLET_CPU_PER_BET_TARGET_US - bet.cpuUsPerRequest.wallet} µs)`,
    });
  }
  if (loneBet !== undefined) {
    const oneRow = baselines['bare-one-row'];
    targets.push({
      name: `one bet at a time over gRPC <= ${LONE_BET_TARGET_MS} ms (p50)`,
      ok: loneBet.latencyMs.p50 <= LONE_BET_TARGET_MS,
      detail: `p50 ${loneBet.latencyMs.p50} ms (margin ${round1(LONE_BET_TARGET_MS - loneBet.latencyMs.p50)} ms), average ${loneBet.latencyMs.avg} ms${oneRow ? `, ${round1(loneBet.latencyMs.avg / oneRow.latencyMs.p50)} x the bare one-row transaction's ${oneRow.latencyMs.p50} ms average` : ''}${loneEcho ? `; a lone gRPC echo: p50 ${loneEcho.p50} ms` : ''}`,
    });
  }
  return targets;
}

/** The issue 14 overload properties of one overload run. */
export function overloadTargets(overload: OverloadResult): Check[] {
  const { load, limitMs } = overload;
  const served = load.statusCodes['200'] ?? 0;
  const slowErrors = Object.entries(load.latencyByStatus)
    .filter(([status]) => status !== '200' && status !== '503')
    .reduce((sum, [, stats]) => sum + stats.count, 0);
  return [
    {
      name: `overload: every request answered within WALLET_DEADLINE_MS + 100 = ${limitMs} ms, or its connection closed at once (<= ${REFUSED_AT_ONCE_MS} ms)`,
      ok:
        load.timeouts === 0 &&
        load.latencyMs.max <= limitMs &&
        overload.maxUnansweredAgeMs <= limitMs &&
        load.refused.max <= REFUSED_AT_ONCE_MS,
      detail: `answers max ${load.latencyMs.max} ms (margin ${round1(limitMs - load.latencyMs.max)} ms); ${load.refused.count} closed, max ${load.refused.max} ms after the scheduled send (margin ${round1(REFUSED_AT_ONCE_MS - load.refused.max)} ms), p99 ${load.refusedFromSend.p99} and max ${load.refusedFromSend.max} ms after the generator sent; ${load.timeouts} unanswered after 10 s`,
    },
    {
      name: `overload: the excess refused before the wallet at <= ${OVERLOAD_REFUSAL_COST * 100}% of a served request's gateway CPU`,
      ok: slowErrors === 0 && overload.cpuUs.perRefusal <= OVERLOAD_REFUSAL_COST * overload.cpuUs.perServed,
      detail: `${overload.cpuUs.perRefusal} µs per connection refused at accept (measured with the gateway's connection cap filled) against ${overload.cpuUs.perServed} µs per served one: ${Math.round((100 * overload.cpuUs.perRefusal) / overload.cpuUs.perServed)}% (margin ${Math.round(100 * OVERLOAD_REFUSAL_COST - (100 * overload.cpuUs.perRefusal) / overload.cpuUs.perServed)} points); ${overload.refusedByAdmission} refused by admission, ${load.statusCodes['503'] ?? 0} x 503, ${slowErrors} other errors`,
    },
    {
      name: `overload: throughput >= ${OVERLOAD_THROUGHPUT * 100}% of capacity`,
      ok: load.okRps >= OVERLOAD_THROUGHPUT * overload.capacityRps,
      detail: `${load.okRps} of ${overload.capacityRps} ${overload.path}s/s: ${ratioMargin(load.okRps / overload.capacityRps, OVERLOAD_THROUGHPUT)} (${served} answered 200)`,
    },
    {
      name: 'overload: a normal request right after gets its 200',
      ok: overload.recovery.bet.status === 200 && overload.recovery.balance.status === 200,
      detail: `bet ${overload.recovery.bet.status} in ${overload.recovery.bet.ms} ms, balance ${overload.recovery.balance.status} in ${overload.recovery.balance.ms} ms`,
    },
  ];
}
