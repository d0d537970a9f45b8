/** The console table and the targets of issue 6. */
import type { LoadResult } from './load.js';
import type { PathName } from './options.js';

export interface BaselineResult {
  name: string;
  describe: string;
  rps: number;
  /** CPU of the baseline's server process (the Fastify front, the DB loop process) per request, µs. */
  cpuUsPerRequest: number;
  cpuUsPerRequestEchoServer?: number;
  latencyMs: { p50: number; p99: number; max: number };
  non2xx: number;
  errors: number;
}

export interface PathResult {
  path: PathName;
  load: LoadResult;
  baseline: string | undefined;
  ratio: number | undefined;
  target: number | undefined;
  rssMb: { gateway: number; wallet: number };
  /** CPU time used per answered request during the measured run, µs (noise-robust cost). */
  cpuUsPerRequest: { gateway: number; wallet: number };
  notes: string[];
}

/** Which baseline each path is divided by, and the issue's target ratio (when it sets one). */
export const BASELINE_OF: Record<PathName, { baseline: string; target: number | undefined }> = {
  balance: { baseline: 'grpc-echo', target: 0.6 },
  bet: { baseline: 'db-bet', target: 0.4 },
  replay: { baseline: 'fastify', target: 0.6 },
  win: { baseline: 'db-bet', target: undefined },
  refund: { baseline: 'db-bet', target: undefined },
};

export const P99_TARGET_MS = 50;
export const GATEWAY_RSS_TARGET_MB = 150;

function pad(text: string, width: number, left = false): string {
  return left ? text.padEnd(width) : text.padStart(width);
}

export function formatTable(paths: PathResult[], baselines: Record<string, BaselineResult>): string {
  const header = [
    'path',
    'req/s',
    'p50 ms',
    'p99 ms',
    'max ms',
    'non-2xx',
    'baseline',
    'base req/s',
    'ratio',
    'target',
    'gw MB',
    'wallet MB',
  ];
  const widths = [8, 7, 7, 7, 8, 8, 10, 10, 6, 8, 6, 9];
  const rows: string[][] = [];
  for (const result of paths) {
    const base = result.baseline === undefined ? undefined : baselines[result.baseline];
    const p99Ok = result.load.latencyMs.p99 < P99_TARGET_MS;
    const ratioText = result.ratio === undefined ? '-' : `${Math.round(result.ratio * 100)}%`;
    const targetText =
      result.target === undefined
        ? '-'
        : `${Math.round(result.target * 100)}% ${result.ratio !== undefined && result.ratio >= result.target ? 'ok' : 'MISS'}`;
    rows.push([
      result.path,
      String(result.load.okRps),
      result.load.latencyMs.p50.toFixed(1),
      `${result.load.latencyMs.p99.toFixed(1)}${p99Ok ? '' : '!'}`,
      result.load.latencyMs.max.toFixed(0),
      String(result.load.non2xx + result.load.errors),
      result.baseline ?? '-',
      base === undefined ? '-' : String(base.rps),
      ratioText,
      targetText,
      result.rssMb.gateway.toFixed(0),
      result.rssMb.wallet.toFixed(0),
      String(result.cpuUsPerRequest.gateway),
      String(result.cpuUsPerRequest.wallet),
    ]);
  }
  for (const base of Object.values(baselines)) {
    rows.push([
      `(${base.name})`,
      String(base.rps),
      base.latencyMs.p50.toFixed(1),
      base.latencyMs.p99.toFixed(1),
      base.latencyMs.max.toFixed(0),
      String(base.non2xx + base.errors),
      '',
      '',
      '',
      '',
      '',
      '',
      String(base.cpuUsPerRequest),
      base.cpuUsPerRequestEchoServer === undefined ? '' : String(base.cpuUsPerRequestEchoServer),
    ]);
  }
  const line = (cells: string[]) => cells.map((cell, i) => pad(cell, widths[i] ?? 8, i === 0 || i === 6)).join('  ');
  return [line(header), ...rows.map(line)].join('\n');
}

export function markdownTable(paths: PathResult[], baselines: Record<string, BaselineResult>): string {
  const lines = [
    '| path | req/s (2xx) | p50 ms | p99 ms | max ms | non-2xx | baseline (req/s) | ratio | target | gateway peak RSS MB | wallet peak RSS MB | gateway CPU µs/req | wallet CPU µs/req |',
    '| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- | ---: | ---: | ---: | ---: |',
  ];
  for (const result of paths) {
    const base = result.baseline === undefined ? undefined : baselines[result.baseline];
    lines.push(
      `| ${result.path} | ${result.load.okRps} | ${result.load.latencyMs.p50.toFixed(1)} | ${result.load.latencyMs.p99.toFixed(1)} | ${result.load.latencyMs.max.toFixed(0)} | ${result.load.non2xx + result.load.errors} | ${base ? `${base.name} (${base.rps})` : '-'} | ${result.ratio === undefined ? '-' : `${Math.round(result.ratio * 100)}%`} | ${result.target === undefined ? '-' : `>= ${Math.round(result.target * 100)}% ${result.ratio !== undefined && result.ratio >= result.target ? 'met' : 'missed'}`} | ${result.rssMb.gateway.toFixed(0)} | ${result.rssMb.wallet.toFixed(0)} | ${result.cpuUsPerRequest.gateway} | ${result.cpuUsPerRequest.wallet} |`,
    );
  }
  for (const base of Object.values(baselines)) {
    lines.push(
      `| baseline ${base.name} | ${base.rps} | ${base.latencyMs.p50.toFixed(1)} | ${base.latencyMs.p99.toFixed(1)} | ${base.latencyMs.max.toFixed(0)} | ${base.non2xx + base.errors} | | | | | | ${base.cpuUsPerRequest} | ${base.cpuUsPerRequestEchoServer ?? ''} |`,
    );
  }
  return lines.join('\n');
}
