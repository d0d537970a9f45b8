/**
 * Child processes of the benchmark: spawned on 127.0.0.1, tracked, and killed whatever way the run
 * ends (normal end, error, Ctrl-C, SIGTERM). Also free ports, readiness polling and RSS sampling.
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { openSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';

const running = new Set<ChildProcess>();
const cleanups: (() => Promise<void>)[] = [];
let exiting = false;

// Last resort: whatever is still alive when this process exits is killed outright.
process.on('exit', () => {
  for (const child of running) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

/** Registers an async cleanup (drop the schema, stop the stack); run once, in reverse order. */
export function onCleanup(fn: () => Promise<void>): void {
  cleanups.push(fn);
}

export async function runCleanups(): Promise<void> {
  while (cleanups.length > 0) {
    const fn = cleanups.pop();
    try {
      await fn?.();
    } catch (error) {
      console.error(`[bench] cleanup failed: ${(error as Error).message}`);
    }
  }
}

/** On Ctrl-C / SIGTERM: clean up (children, schema) and exit non-zero. */
export function installSignalHandlers(): void {
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      if (exiting) return;
      exiting = true;
      console.error(`\n[bench] ${signal}: stopping children and cleaning up`);
      const force = setTimeout(() => process.exit(130), 15_000);
      force.unref();
      void runCleanups().finally(() => process.exit(130));
    });
  }
}

export interface Child {
  name: string;
  pid: number;
  process: ChildProcess;
  /** Resolves with the exit code (or the signal name) once the child is gone. */
  exited: Promise<number | string>;
  /** Resolves with the first stdout line matching `pattern` (only for children spawned with pipeStdout). */
  waitForLine(pattern: RegExp, timeoutMs: number): Promise<string>;
  /** SIGTERM, then SIGKILL after `graceMs`. Resolves once it is gone. */
  stop(graceMs?: number): Promise<number | string>;
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  nodeArgs?: string[];
  /** stdout and stderr appended to this file (services); else stdout piped for waitForLine, stderr inherited. */
  logFile?: string;
  cwd?: string;
}

/** Spawns `node [nodeArgs] script [args]` (scripts ending in .ts run through tsx). */
export function spawnNode(name: string, script: string, args: string[], options: SpawnOptions = {}): Child {
  const nodeArgs = [...(script.endsWith('.ts') ? ['--import', 'tsx'] : []), ...(options.nodeArgs ?? [])];
  return spawnProcess(name, process.execPath, [...nodeArgs, script, ...args], options);
}

export function spawnProcess(name: string, command: string, args: string[], options: SpawnOptions = {}): Child {
  let stdio: StdioOptions;
  if (options.logFile !== undefined) {
    const fd = openSync(options.logFile, 'a');
    stdio = ['ignore', fd, fd];
  } else {
    stdio = ['ignore', 'pipe', 'inherit'];
  }
  const child = spawn(command, args, { env: options.env ?? process.env, stdio, cwd: options.cwd });
  if (child.pid === undefined) throw new Error(`could not start ${name}`);
  running.add(child);
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => {
      running.delete(child);
      resolve(code ?? signal ?? 'unknown');
    });
  });
  const lines: string[] = [];
  const waiters: { pattern: RegExp; resolve: (line: string) => void }[] = [];
  if (child.stdout) {
    createInterface({ input: child.stdout }).on('line', (line) => {
      lines.push(line);
      for (const waiter of [...waiters]) {
        if (waiter.pattern.test(line)) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve(line);
        }
      }
    });
  }
  return {
    name,
    pid: child.pid,
    process: child,
    exited,
    waitForLine(pattern, timeoutMs) {
      const seen = lines.find((line) => pattern.test(line));
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`${name}: no line matching ${pattern} in ${timeoutMs} ms`)),
          timeoutMs,
        );
        const waiter = {
          pattern,
          resolve: (line: string) => {
            clearTimeout(timer);
            resolve(line);
          },
        };
        waiters.push(waiter);
        void exited.then((code) => {
          clearTimeout(timer);
          reject(new Error(`${name} exited (${code}) before printing a line matching ${pattern}`));
        });
      });
    },
    async stop(graceMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** A TCP port free on 127.0.0.1 right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Polls `probe` until it returns true; throws after `timeoutMs`, or as soon as `child` exits. */
export async function waitUntil(
  what: string,
  probe: () => Promise<boolean>,
  timeoutMs: number,
  child?: Child,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  let dead: number | string | undefined;
  void child?.exited.then((code) => (dead = code));
  for (;;) {
    if (dead !== undefined) throw new Error(`${what}: the process exited (${dead})`);
    try {
      if (await probe()) return;
    } catch {
      // not yet
    }
    if (Date.now() > until) throw new Error(`${what}: not ready after ${timeoutMs} ms`);
    await sleep(100);
  }
}

/** Resident set sizes of a process from /proc (kB → MB). */
export interface MemorySample {
  rssMb: number;
  /** Peak RSS since start or since the last resetPeak(). */
  hwmMb: number;
}

export function readMemory(pid: number): MemorySample | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
    return { rssMb: kb('VmRSS') / 1024, hwmMb: kb('VmHWM') / 1024 };
  } catch {
    return undefined;
  }
}

/** Resets VmHWM (writing 5 to clear_refs); false when the kernel does not allow it. */
export function resetPeak(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** Samples the RSS of some processes every `intervalMs`; `window()` gives the peak since the last call. */
export class RssSampler {
  readonly #pids: Record<string, number>;
  readonly #timer: NodeJS.Timeout;
  #peaks: Record<string, number> = {};
  #resettable = true;

  constructor(pids: Record<string, number>, intervalMs = 200) {
    this.#pids = pids;
    this.#timer = setInterval(() => this.#sample(), intervalMs);
    this.#timer.unref();
    this.window();
  }

  #sample(): void {
    for (const [name, pid] of Object.entries(this.#pids)) {
      const sample = readMemory(pid);
      if (sample && Number.isFinite(sample.rssMb)) this.#peaks[name] = Math.max(this.#peaks[name] ?? 0, sample.rssMb);
    }
  }

  /** Peak RSS (MB) of each process since the previous call (VmHWM when resettable, else sampled). */
  window(): Record<string, number> {
    this.#sample();
    const result: Record<string, number> = {};
    for (const [name, pid] of Object.entries(this.#pids)) {
      const hwm = this.#resettable ? readMemory(pid)?.hwmMb : undefined;
      result[name] = round1(Math.max(this.#peaks[name] ?? 0, hwm !== undefined && Number.isFinite(hwm) ? hwm : 0));
      if (this.#resettable) this.#resettable = resetPeak(pid);
    }
    this.#peaks = {};
    return result;
  }

  now(): Record<string, number> {
    const result: Record<string, number> = {};
    for (const [name, pid] of Object.entries(this.#pids)) result[name] = round1(readMemory(pid)?.rssMb ?? NaN);
    return result;
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}

/** CPU time (user + system, ms) a process has used so far, from /proc/<pid>/stat (10 ms resolution). */
export function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15)
    return (ticks * 1000) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

/**
 * The whole machine's CPU from /proc/stat over a window: the share of all cores busy, and of it the
 * share the hypervisor took (steal). Tells whether a run was bound by the machine, not by one process.
 */
export function machineCpu(): () => { busyPct: number; stealPct: number } {
  const read = () => {
    // cpu  user nice system idle iowait irq softirq steal (ticks since boot, all cores)
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
    const ticks = line
      .trim()
      .split(/\s+/)
      .slice(1, 9)
      .map((value) => Number(value) || 0);
    const at = (index: number) => ticks[index] ?? 0;
    return { total: ticks.reduce((sum, value) => sum + value, 0), idle: at(3) + at(4), steal: at(7) };
  };
  const before = read();
  return () => {
    const after = read();
    const total = after.total - before.total;
    const pct = (value: number) => (total > 0 ? Math.round((1000 * value) / total) / 10 : NaN);
    return { busyPct: pct(total - (after.idle - before.idle)), stealPct: pct(after.steal - before.steal) };
  };
}

/** USER_HZ: 100 on every Linux this runs on. */
const CLOCK_TICKS = 100;

/** CPU used by some processes between start() and the returned function's call, in µs per request. */
export function cpuMeter(pids: Record<string, number>): (requests: number) => Record<string, number> {
  const before = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuMs(pid)]));
  return (requests) => {
    const result: Record<string, number> = {};
    for (const [name, pid] of Object.entries(pids)) {
      const used = cpuMs(pid) - (before[name] ?? NaN);
      result[name] = requests > 0 ? Math.round((used * 1000) / requests) : NaN;
    }
    return result;
  };
}

export function round1(value: number): number {
  return Math.round(value * 10) / 10;
}
