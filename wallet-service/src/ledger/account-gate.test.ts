import t from 'tap';
import { AccountGate } from './account-gate.js';
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
