/**
 * At most a few calls per player account in flight to PostgreSQL; the rest wait here, in arrival order.
 * The account's row lock serializes them anyway: in the database every extra waiter is a backend that
 * starts its call, sleeps on the lock, wakes and rechecks the row (one player's bets from 16 pool
 * connections cost about 2.7 times the database CPU per bet of 2). Two in flight keep the next call
 * waiting at the lock, so the handoff costs no round trip. Nothing about the outcome changes: a call
 * whose deadline passes while it waits here ends as it would at the lock, having run nothing.
 */
import { DeadlineExceededError } from './errors.js';

export const CALLS_PER_ACCOUNT = 2;

interface Waiter {
  admit(): void;
}

interface AccountQueue {
  running: number;
  waiting: Waiter[];
}

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
  async run<T>(account: string, waitUntil: number | undefined, fn: () => Promise<T>): Promise<T> {
    let queue = this.accounts.get(account);
    if (queue === undefined) {
      queue = { running: 0, waiting: [] };
      this.accounts.set(account, queue);
    }
    if (queue.running < this.limit) queue.running++;
    else await this.wait(queue, waitUntil);
    try {
      return await fn();
    } finally {
      // The slot passes straight to the next waiter, so a newcomer never overtakes it.
      const next = queue.waiting.shift();
      if (next !== undefined) next.admit();
      else if (--queue.running === 0) this.accounts.delete(account);
    }
  }

  private wait(queue: AccountQueue, waitUntil: number | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer =
        waitUntil === undefined
          ? undefined
          : setTimeout(
              () => {
                queue.waiting.splice(queue.waiting.indexOf(waiter), 1);
                reject(new DeadlineExceededError("waiting for the account's earlier calls"));
              },
              Math.max(0, waitUntil - Date.now()),
            );
      const waiter: Waiter = {
        admit: () => {
          if (timer !== undefined) clearTimeout(timer);
          resolve();
        },
      };
      queue.waiting.push(waiter);
    });
  }
}
