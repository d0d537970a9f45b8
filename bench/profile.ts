/**
 * Summarizes V8 CPU profiles (`node --cpu-prof`): self time by function and by package, idle time
 * left out of the percentages. Used by `npm run bench -- --profile`; also runs on its own:
 *
 *   node --import tsx bench/profile.ts <file.cpuprofile>... [--top 20]
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: CpuProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface ProfileEntry {
  name: string;
  where: string;
  selfMs: number;
  /** Share of busy (non-idle) time. */
  percent: number;
}

/** A time range on the profile's clock (µs, CLOCK_MONOTONIC: `process.hrtime.bigint() / 1000n`). */
export interface ProfileWindow {
  fromUs: number;
  toUs: number;
}

export interface ProfileSummary {
  file: string;
  /** Only the samples taken in this range were counted. */
  window?: ProfileWindow;
  totalMs: number;
  busyMs: number;
  topFunctions: ProfileEntry[];
  byPackage: ProfileEntry[];
}

/** The package (or area) a script URL belongs to: `fastify`, `@grpc/grpc-js`, `node:internal`, `gateway`, ... */
export function packageOf(url: string, functionName: string): string {
  if (url === '') {
    if (functionName === '(garbage collector)') return '(gc)';
    if (functionName === '(idle)' || functionName === '(program)' || functionName === '(root)') return functionName;
    return '(native)';
  }
  if (url.startsWith('node:')) return 'node:internal';
  const modules = url.lastIndexOf('/node_modules/');
  if (modules >= 0) {
    const rest = url.slice(modules + '/node_modules/'.length).split('/');
    return rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1] ?? ''}` : (rest[0] ?? url);
  }
  for (const area of ['gateway', 'wallet-service', 'proto', 'bench']) {
    if (url.includes(`/${area}/`)) return area;
  }
  return url;
}

function shortWhere(url: string, line: number): string {
  if (url === '') return '';
  const modules = url.lastIndexOf('/node_modules/');
  const shown =
    modules >= 0
      ? url.slice(modules + '/node_modules/'.length)
      : url.replace(/^file:\/\/.*?\/(gateway|wallet-service|proto)\//, '$1/');
  return `${shown}:${line + 1}`;
}

export function summarizeProfile(file: string, top = 20, window?: ProfileWindow): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parentOf = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);
  /**
   * A native frame (socket write, HMAC, ...) is shown with the nearest caller outside Node's own
   * modules: the package or application code that asked for it.
   */
  const jsCaller = (id: number): string => {
    for (let at = parentOf.get(id); at !== undefined; at = parentOf.get(at)) {
      const frame = byId.get(at)?.callFrame;
      if (frame && frame.url !== '' && !frame.url.startsWith('node:')) {
        return `${frame.functionName || '(anonymous)'} ${shortWhere(frame.url, frame.lineNumber)}`;
      }
    }
    return '';
  };
  const selfUs = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  if (samples.length > 0) {
    // A sample's time is the delta to the next sample; the first sample is taken at startTime + deltas[0].
    let at = profile.startTime;
    for (let i = 0; i < samples.length; i++) {
      at += deltas[i] ?? 0;
      if (window !== undefined && (at < window.fromUs || at > window.toUs)) continue;
      const id = samples[i] as number;
      const delta = deltas[i + 1] ?? 0;
      selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, delta));
    }
  } else {
    if (window !== undefined) throw new Error(`${file}: no samples, cannot take a time window`);
    const interval =
      (profile.endTime - profile.startTime) /
      Math.max(
        1,
        profile.nodes.reduce((s, n) => s + (n.hitCount ?? 0), 0),
      );
    for (const node of profile.nodes) selfUs.set(node.id, (node.hitCount ?? 0) * interval);
  }

  const functions = new Map<string, { name: string; where: string; us: number }>();
  const packages = new Map<string, number>();
  let totalUs = 0;
  let idleUs = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    totalUs += us;
    if (functionName === '(idle)') {
      idleUs += us;
      continue;
    }
    const name = functionName || '(anonymous)';
    const caller = (url === '' || url.startsWith('node:')) && !functionName.startsWith('(') ? jsCaller(id) : '';
    const where = caller === '' ? shortWhere(url, lineNumber) : `<- ${caller}`;
    const key = `${name}@${where}`;
    const entry = functions.get(key) ?? { name, where, us: 0 };
    entry.us += us;
    functions.set(key, entry);
    const pkg = packageOf(url, functionName);
    packages.set(pkg, (packages.get(pkg) ?? 0) + us);
  }
  const busyUs = totalUs - idleUs;
  const percent = (us: number) => Math.round((1000 * us) / Math.max(1, busyUs)) / 10;
  const ms = (us: number) => Math.round(us / 100) / 10;
  return {
    file,
    ...(window === undefined ? {} : { window }),
    totalMs: ms(totalUs),
    busyMs: ms(busyUs),
    topFunctions: [...functions.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((entry) => ({ name: entry.name, where: entry.where, selfMs: ms(entry.us), percent: percent(entry.us) })),
    byPackage: [...packages.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, where: '', selfMs: ms(us), percent: percent(us) })),
  };
}

export function printProfile(label: string, summary: ProfileSummary): void {
  console.log(
    `\n${label}: ${summary.file}\n  busy ${(summary.busyMs / 1000).toFixed(1)} s of ${(summary.totalMs / 1000).toFixed(1)} s profiled`,
  );
  console.log('  self time by package:');
  for (const entry of summary.byPackage.slice(0, 12)) {
    console.log(`    ${entry.percent.toFixed(1).padStart(5)}%  ${entry.name}`);
  }
  console.log('  top functions (self time):');
  for (const entry of summary.topFunctions) {
    console.log(`    ${entry.percent.toFixed(1).padStart(5)}%  ${entry.name}  ${entry.where}`);
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  const topIndex = args.indexOf('--top');
  const top = topIndex >= 0 ? Number(args.splice(topIndex, 2)[1]) : 20;
  if (args.length === 0) {
    console.error('usage: node --import tsx bench/profile.ts <file.cpuprofile>... [--top N]');
    process.exit(2);
  }
  for (const file of args) printProfile('profile', summarizeProfile(file, top));
}
