/**
 * At most a few money statements in flight to PostgreSQL at once. Calls that come while all are out
 * wait here, and when one lands they leave together as one statement: under load, one round trip and
 * one commit carry many requests (a database transaction of several players' requests, run one after
 * the other). Below the limit a call leaves at once, alone, as it would without this queue.
 *
 * A shared statement locks its players' accounts in one order, so two of them never wait for each
 * other, and fails rather than wait long for an account held elsewhere. When it fails nothing of it
 * committed, and each of its calls is then made alone, outside the slot, deciding its own answer as it
 * would have.
 */
import { AsyncResource } from 'node:async_hooks';

export interface FlightPlan<C> {
  /** The most statements in flight. */
  readonly limit: number;
  /** The most calls one statement carries. */
  readonly maxCalls: number;
  /** The account a call locks first: a statement carries its calls grouped by it. */
  key(call: C): string;
  /** Why a call can no longer go (its deadline passed while it waited), else undefined. */
  refusal(call: C): unknown;
  /** One call alone, with its own retries. */
  alone(call: C): Promise<unknown>;
  /** Several calls as one statement: one result each, in order; rejects when anything failed. */
  together(calls: readonly C[]): Promise<unknown[]>;
}

interface Group<C> {
  calls: readonly C[];
  done(results: PromiseSettledResult<unknown>[]): void;
  /** The caller's async context (its trace), kept while it waits: a statement runs in its first group's. */
  context?: AsyncResource;
}

export class Flights<C> {
  private inFlight = 0;
  private readonly waiting: Group<C>[] = [];

  constructor(private readonly plan: FlightPlan<C>) {}

  /** Statements in flight and groups waiting (tests, metrics). */
  get load(): { inFlight: number; waiting: number } {
    return { inFlight: this.inFlight, waiting: this.waiting.length };
  }

  /** Carries a group of calls (one account's, in order): settles each, never rejects. */
  carry(calls: readonly C[]): Promise<PromiseSettledResult<unknown>[]> {
    return new Promise((done) => {
      const group: Group<C> = { calls, done };
      if (this.inFlight < this.plan.limit) {
        this.inFlight++;
        void this.fly([group]);
      } else {
        group.context = new AsyncResource('phia.flights');
        this.waiting.push(group);
      }
    });
  }

  private async fly(groups: Group<C>[]): Promise<void> {
    const calls = groups.flatMap((group) => group.calls);
    let results: PromiseSettledResult<unknown>[];
    let alone: number[] = [];
    try {
      ({ results, alone } = await this.settle(calls));
    } catch (error) {
      results = calls.map(() => ({ status: 'rejected', reason: error }));
    }
    // The slot is passed on before the callers hear back, so it is free by the time they go on; calls
    // of a failed statement go alone outside it, so one that waits long holds up no other statement.
    // A group's calls (one account's) stay in order, one at a time; the groups go side by side.
    this.land();
    let at = 0;
    for (const group of groups) {
      const start = at;
      const end = (at += group.calls.length);
      const mine = alone.filter((i) => i >= start && i < end);
      void (async () => {
        for (const i of mine) results[i] = await settled(this.plan.alone(calls[i] as C));
        group.done(results.slice(start, end));
      })();
    }
  }

  /** The slot passes to the groups waiting, as many as one statement carries, in arrival order. */
  private land(): void {
    if (this.waiting.length === 0) {
      this.inFlight--;
      return;
    }
    const next: Group<C>[] = [];
    let calls = 0;
    while (this.waiting.length > 0) {
      const group = this.waiting[0] as Group<C>;
      if (next.length > 0 && calls + group.calls.length > this.plan.maxCalls) break;
      next.push(this.waiting.shift() as Group<C>);
      calls += group.calls.length;
    }
    const context = (next[0] as Group<C>).context;
    if (context === undefined) void this.fly(next);
    else context.runInAsyncScope(() => void this.fly(next));
  }

  /**
   * The results of `calls`, in their order, but for `alone`: the calls of a shared statement that
   * failed (nothing of it committed), to be made alone.
   */
  private async settle(calls: readonly C[]): Promise<{ results: PromiseSettledResult<unknown>[]; alone: number[] }> {
    const results: PromiseSettledResult<unknown>[] = new Array(calls.length);
    const going: number[] = [];
    calls.forEach((call, i) => {
      const refusal = this.plan.refusal(call);
      if (refusal === undefined) going.push(i);
      else results[i] = { status: 'rejected', reason: refusal };
    });
    if (going.length === 1) {
      const i = going[0] as number;
      results[i] = await settled(this.plan.alone(calls[i] as C));
    } else if (going.length > 1) {
      // By account key, a group's own calls keeping their order (the statement locks its accounts
      // first, in an order of its own, so the order here is not what keeps two statements apart).
      const ordered = going
        .map((i, arrival) => ({ i, arrival, key: this.plan.key(calls[i] as C) }))
        .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.arrival - b.arrival))
        .map((entry) => entry.i);
      try {
        const values = await this.plan.together(ordered.map((i) => calls[i] as C));
        ordered.forEach((i, k) => (results[i] = { status: 'fulfilled', value: values[k] }));
      } catch {
        return { results, alone: going };
      }
    }
    return { results, alone: [] };
  }
}

async function settled(promise: Promise<unknown>): Promise<PromiseSettledResult<unknown>> {
  try {
    return { status: 'fulfilled', value: await promise };
  } catch (reason) {
    return { status: 'rejected', reason };
  }
}
