import t from 'tap';
import { AsyncLocalStorage } from 'node:async_hooks';
import { AccountGate, type BatchRunner } from './account-gate.js';
import { DeadlineExceededError } from './errors.js';

/** A call that runs until released by hand, recording when it starts. */
function heldCall(log: string[], name: string) {
  let release!: () => void;
  const done = new Promise<void>((resolve) => (release = resolve));
  return {
    fn: async () => {
      log.push(name);
      await done;
      return name;
    },
    release: () => release(),
  };
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

t.test('at most two calls of an account run at once, the rest in arrival order', async (t) => {
  const gate = new AccountGate(2);
  const started: string[] = [];
  const calls = ['a', 'b', 'c', 'd'].map((name) => heldCall(started, name));
  const results = calls.map((call) => gate.run('player-1', undefined, call.fn));
  await tick();
  t.same(started, ['a', 'b'], 'two run, two wait');
  calls[1]?.release();
  await tick();
  t.same(started, ['a', 'b', 'c'], 'the first waiter takes the freed slot');
  calls[0]?.release();
  calls[2]?.release();
  calls[3]?.release();
  t.same(await Promise.all(results), ['a', 'b', 'c', 'd']);
  t.equal(gate.size, 0, 'the account is forgotten once its calls are done');
});

t.test('other accounts never wait for a busy one', async (t) => {
  const gate = new AccountGate(1);
  const started: string[] = [];
  const busy = heldCall(started, 'busy');
  const first = gate.run('player-1', undefined, busy.fn);
  const other = await gate.run('player-2', undefined, async () => 'other');
  t.equal(other, 'other');
  busy.release();
  await first;
});

t.test('a call whose deadline passes while it waits never runs', async (t) => {
  const gate = new AccountGate(1);
  const started: string[] = [];
  const busy = heldCall(started, 'busy');
  const first = gate.run('player-1', undefined, busy.fn);
  const late = gate.run('player-1', Date.now() + 20, async () => started.push('late'));
  const after = gate.run('player-1', undefined, async () => started.push('after'));
  await t.rejects(late, DeadlineExceededError);
  busy.release();
  await first;
  await after;
  t.same(started, ['busy', 'after'], 'the late call was dropped from the queue, the next one ran');
  t.equal(gate.size, 0);
});

t.test('a failing call frees its slot', async (t) => {
  const gate = new AccountGate(1);
  await t.rejects(
    gate.run('player-1', undefined, async () => {
      throw new Error('refused');
    }),
    /refused/,
  );
  t.equal(await gate.run('player-1', undefined, async () => 'next'), 'next');
  t.equal(gate.size, 0);
});

/** A runner that records each group it runs and answers every item with its own value. */
function recordingRunner(max: number, groups: string[][]): BatchRunner<string, string> {
  return {
    max,
    run: async (items) => {
      groups.push([...items]);
      return items.map((value) => ({ status: 'fulfilled', value }));
    },
  };
}

t.test('waiters next to each other with one runner leave together, up to its max, in order', async (t) => {
  const gate = new AccountGate(1);
  const groups: string[][] = [];
  const runner = recordingRunner(3, groups);
  const busy = heldCall([], 'busy');
  const first = gate.run('player-1', undefined, busy.fn);
  const batched = ['a', 'b', 'c', 'd', 'e'].map((item) => gate.runBatched('player-1', undefined, item, runner));
  busy.release();
  await first;
  t.same(await Promise.all(batched), ['a', 'b', 'c', 'd', 'e'], 'each caller gets its own result');
  t.same(
    groups,
    [
      ['a', 'b', 'c'],
      ['d', 'e'],
    ],
    'two runs: three, then the rest',
  );
  t.equal(gate.size, 0);
});

t.test('a waiter of another kind ends a batch: nobody overtakes it', async (t) => {
  const gate = new AccountGate(1);
  const started: string[][] = [];
  const runner = recordingRunner(10, started);
  const busy = heldCall([], 'busy');
  const first = gate.run('player-1', undefined, busy.fn);
  const a = gate.runBatched('player-1', undefined, 'a', runner);
  const other = gate.run('player-1', undefined, async () => started.push(['other']));
  const b = gate.runBatched('player-1', undefined, 'b', runner);
  busy.release();
  await Promise.all([first, a, other, b]);
  t.same(started, [['a'], ['other'], ['b']], 'three runs, in arrival order');
});

t.test('a runner that fails fails each caller of its run, and frees the slot', async (t) => {
  const gate = new AccountGate(1);
  const failing: BatchRunner<string, string> = {
    max: 5,
    run: () => Promise.reject(new Error('database gone')),
  };
  const busy = heldCall([], 'busy');
  const first = gate.run('player-1', undefined, busy.fn);
  const calls = ['a', 'b'].map((item) => gate.runBatched('player-1', undefined, item, failing));
  busy.release();
  await first;
  for (const call of calls) await t.rejects(call, /database gone/);
  t.equal(await gate.run('player-1', undefined, async () => 'next'), 'next');
  t.equal(gate.size, 0);
});

t.test("a call that waited runs in its caller's async context, not in the one that freed the slot", async (t) => {
  const gate = new AccountGate(1);
  const storage = new AsyncLocalStorage<string>();
  const busy = heldCall([], 'busy');
  const first = storage.run('first caller', () => gate.run('player-1', undefined, busy.fn));
  const seen = storage.run('second caller', () => gate.run('player-1', undefined, async () => storage.getStore()));
  const groups: string[][] = [];
  const runner: BatchRunner<string, string | undefined> = {
    max: 5,
    run: async (items) => {
      groups.push([...items]);
      const store = storage.getStore();
      return items.map(() => ({ status: 'fulfilled', value: store }));
    },
  };
  const batched = ['third', 'fourth'].map((item) =>
    storage.run(`${item} caller`, () => gate.runBatched('player-1', undefined, item, runner)),
  );
  storage.run('releaser', () => busy.release());
  await first;
  t.equal(await seen, 'second caller');
  t.same(await Promise.all(batched), ['third caller', 'third caller'], "a batch runs in its first caller's context");
});
