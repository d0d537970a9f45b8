/**
 * Child processes of the soak: each is started, SIGKILLed, paused and restarted on purpose, and every
 * one is killed when the harness exits, however it exits (a process 'exit' handler).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { createServer } from 'node:net';

const live = new Set<ChildProcess>();
let handlersInstalled = false;

/** Kills every child still running (synchronous: safe inside an 'exit' handler). */
export function killAllChildren(): void {
  for (const child of live) {
    try {
      if (child.pid !== undefined) process.kill(child.pid, 'SIGCONT');
    } catch {
      // gone already
    }
    try {
      child.kill('SIGKILL');
    } catch {
      // gone already
    }
  }
  live.clear();
}

const interruptCleanups = new Set<() => Promise<unknown>>();

/** Runs `cleanup` (bounded to 3 s) if the harness is interrupted by a signal; returns the unregister. */
export function onInterrupt(cleanup: () => Promise<unknown>): () => void {
  interruptCleanups.add(cleanup);
  return () => interruptCleanups.delete(cleanup);
}

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', killAllChildren);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      killAllChildren();
      const code = signal === 'SIGINT' ? 130 : 143;
      const timer = setTimeout(() => process.exit(code), 3000);
      void Promise.allSettled([...interruptCleanups].map((cleanup) => cleanup())).then(() => {
        clearTimeout(timer);
        process.exit(code);
      });
    });
  }
}

/**
 * A port free now, below Linux's ephemeral range (32768 and up): a port the OS handed out would be
 * handed out again, to any socket (every client connection of the parallel tests takes one) in the
 * seconds before the process that was given it binds it.
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (await canListen(port)) return port;
  }
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

export interface ProcessSpec {
  name: string;
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  /** stdout and stderr are appended here. */
  logFile: string;
}

export class ManagedProcess {
  readonly spec: ProcessSpec;
  /** Exits nobody asked for (a crash): each one is a finding. */
  readonly unexpectedExits: string[] = [];
  #child: ChildProcess | undefined;
  #log: WriteStream | undefined;
  #expectingExit = false;
  #exited: Promise<void> = Promise.resolve();
  #paused = false;
  starts = 0;

  constructor(spec: ProcessSpec) {
    this.spec = spec;
    installHandlers();
  }

  get running(): boolean {
    return this.#child !== undefined;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  start(): void {
    if (this.#child !== undefined) throw new Error(`${this.spec.name} is already running`);
    this.#log ??= createWriteStream(this.spec.logFile, { flags: 'a' });
    this.#log.write(`\n--- ${new Date().toISOString()} start #${++this.starts}\n`);
    const child = spawn(this.spec.command, this.spec.args, {
      env: this.spec.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.#child = child;
    this.#expectingExit = false;
    this.#paused = false;
    live.add(child);
    child.stdout?.pipe(this.#log, { end: false });
    child.stderr?.pipe(this.#log, { end: false });
    this.#exited = new Promise((resolve) => {
      const onGone = (code: number | null, signal: NodeJS.Signals | null) => {
        live.delete(child);
        if (this.#child === child) this.#child = undefined;
        const how = `exit code ${code ?? '-'} signal ${signal ?? '-'}`;
        this.#log?.write(`--- ${new Date().toISOString()} ${how}\n`);
        if (!this.#expectingExit) this.unexpectedExits.push(`${this.spec.name}: ${how}`);
        resolve();
      };
      child.once('exit', onGone);
      child.once('error', (error) => {
        this.#log?.write(`--- spawn error: ${error.message}\n`);
        onGone(null, null);
      });
    });
  }

  /** Sends `signal` (SIGKILL by default) and waits until the process is gone. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.#child;
    if (child === undefined) return;
    this.#expectingExit = true;
    if (this.#paused) this.resume();
    child.kill(signal);
    await this.#exited;
  }

  /** SIGSTOP: the process keeps its sockets but answers nothing. */
  pause(): void {
    if (this.#child?.pid === undefined) return;
    process.kill(this.#child.pid, 'SIGSTOP');
    this.#paused = true;
  }

  resume(): void {
    if (this.#child?.pid === undefined || !this.#paused) return;
    process.kill(this.#child.pid, 'SIGCONT');
    this.#paused = false;
  }

  async close(): Promise<void> {
    await this.kill('SIGKILL');
    await new Promise<void>((resolve) => (this.#log ? this.#log.end(() => resolve()) : resolve()));
    this.#log = undefined;
  }
}
