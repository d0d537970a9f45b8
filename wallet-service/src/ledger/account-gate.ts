/**
 * One call per player account in flight to PostgreSQL; the rest wait here, in arrival order. The
 * account's row lock serializes them anyway: in the database every extra waiter is a backend that
 * starts its call, sleeps on the lock, wakes and rechecks the row, and a batch (flights.ts) that met
 * the lock of its own account's previous call would give up waiting and go alone. Nothing about the
 * outcome changes: a call whose deadline passes while it waits here ends as it would at the lock,
 * having run nothing.
 *
 * Calls that wait together may leave together: when the slot frees, the next waiter takes along the
 * waiters right behind it that share its batch runner (up to the runner's `max`), and the runner makes
 * them one database call. One player's burst then pays one lock, one round trip and one commit.
 */
import { AsyncResource } from 'node:async_hooks';
import { DeadlineExceededError } from './errors.js';

export const CALLS_PER_ACCOUNT = 1;

/** Runs several waiting calls as one. Settles every item, in order; never rejects. */
export interface BatchRunner<I, R> {
  /** The most items one run takes. */
  readonly max: number;
  run(items: readonly I[]): Promise<PromiseSettledResult<R>[]>;
}

interface Waiter {
  item: unknown;
  runner: BatchRunner<unknown, unknown>;
  settle(result: PromiseSettledResult<unknown> | undefined): void;
  timer?: NodeJS.Timeout;
  /** The caller's async context (its trace), kept while it waits: its call runs in it, not the releaser's. */
  context?: AsyncResource;
}

interface AccountQueue {
  running: number;
  waiting: Waiter[];
}

/** A call on its own: the item is the function to run. */
const ALONE: BatchRunner<() => Promise<unknown>, unknown> = {
  max: 1,
  run: (calls) => Promise.allSettled(calls.map((call) => call())),
};

export class AccountGate {
  private readonly accounts = new Map<string, AccountQueue>();

  constructor(private readonly limit = CALLS_PER_ACCOUNT) {}

  /** Calls in flight or waiting, by account (tests). */
  get size(): number {
    return this.accounts.size;
  }

  /**
   * Runs `fn` once fewer than `limit` calls of `account` are running. `waitUntil` (epoch ms) bounds the
   * wait: past it, DeadlineExceededError and `fn` never runs.
   */
  run<T>(account: string, waitUntil: number | undefined, fn: () => Promise<T>): Promise<T> {
    return this.runBatched(account, waitUntil, fn, ALONE) as Promise<T>;
  }

  /** Like `run`, for an item that `runner` may run together with the waiters next to it. */
  runBatched<I, R>(account: string, waitUntil: number | undefined, item: I, runner: BatchRunner<I, R>): Promise<R> {
    let queue = this.accounts.get(account);
    if (queue === undefined) {
      queue = { running: 0, waiting: [] };
      this.accounts.set(account, queue);
    }
    const admitted = queue;
    return new Promise<R>((resolve, reject) => {
      const waiter: Waiter = {
        item,
        runner: runner as BatchRunner<unknown, unknown>,
        settle: (result) => {
          if (result === undefined) reject(new Error('the batch runner gave no result for a call'));
          else if (result.status === 'fulfilled') resolve(result.value as R);
          else reject(result.reason);
        },
      };
      if (admitted.running < this.limit) {
        admitted.running++;
        this.start(account, admitted, [waiter]);
        return;
      }
      if (waitUntil !== undefined) {
        waiter.timer = setTimeout(
          () => {
            admitted.waiting.splice(admitted.waiting.indexOf(waiter), 1);
            reject(new DeadlineExceededError("waiting for the account's earlier calls"));
          },
          Math.max(0, waitUntil - Date.now()),
        );
      }
      waiter.context = new AsyncResource('phia.account-gate');
      admitted.waiting.push(waiter);
    });
  }

  /** Runs a group in one slot, then passes the slot on. */
  private start(account: string, queue: AccountQueue, group: Waiter[]): void {
    const leader = group[0] as Waiter;
    const items = group.map((waiter) => waiter.item);
    let running: Promise<PromiseSettledResult<unknown>[]>;
    try {
      running =
        leader.context === undefined
          ? leader.runner.run(items)
          : leader.context.runInAsyncScope(() => leader.runner.run(items));
    } catch (error) {
      running = Promise.reject(error as Error);
    }
    // The slot is passed on before the callers hear back, so it is free by the time they go on.
    running.then(
      (results) => {
        this.release(account, queue);
        group.forEach((waiter, i) => waiter.settle(results[i]));
      },
      (error: unknown) => {
        this.release(account, queue);
        group.forEach((waiter) => waiter.settle({ status: 'rejected', reason: error }));
      },
    );
  }

  /** The slot passes straight to the next waiter (and those batched with it): a newcomer never overtakes. */
  private release(account: string, queue: AccountQueue): void {
    const next = queue.waiting.shift();
    if (next === undefined) {
      if (--queue.running === 0) this.accounts.delete(account);
      return;
    }
    const group = [next];
    while (group.length < next.runner.max && queue.waiting[0]?.runner === next.runner) {
      group.push(queue.waiting.shift() as Waiter);
    }
    for (const waiter of group) clearTimeout(waiter.timer);
    this.start(account, queue, group);
  }
}
