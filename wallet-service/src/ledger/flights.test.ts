import t from 'tap';
import { AsyncLocalStorage } from 'node:async_hooks';
import { Flights, type FlightPlan } from './flights.js';

interface Call {
  account: string;
  name: string;
  late?: boolean;
  fails?: boolean;
}

/** A plan whose statements stay out until released by hand, recording what flew and how. */
function heldPlan(limit: number, maxCalls: number, options: { togetherFails?: boolean } = {}) {
  const flown: string[][] = [];
  const releases: (() => void)[] = [];
  const hold = () => new Promise<void>((resolve) => releases.push(resolve));
  const plan: FlightPlan<Call> = {
    limit,
    maxCalls,
    key: (call) => call.account,
    refusal: (call) => (call.late === true ? new Error(`${call.name} is late`) : undefined),
    alone: async (call) => {
      flown.push([call.name]);
      await hold();
      if (call.fails === true) throw new Error(`${call.name} refused`);
      return `${call.name} alone`;
    },
    together: async (calls) => {
      flown.push(calls.map((call) => call.name));
      await hold();
      if (options.togetherFails === true) throw new Error('deadlock');
      return calls.map((call) => `${call.name} together`);
    },
  };
  /** Lets every statement out so far land. */
  const landAll = async () => {
    while (releases.length > 0) {
      releases.splice(0).forEach((release) => release());
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  };
  return { plan, flown, landAll };
}

const call = (account: string, name = account, extra: Partial<Call> = {}): Call => ({ account, name, ...extra });
const values = (results: PromiseSettledResult<unknown>[]) =>
  results.map((result) => (result.status === 'fulfilled' ? result.value : `error: ${String(result.reason)}`));
const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

t.test('below the limit every call leaves at once, alone', async (t) => {
  const { plan, flown, landAll } = heldPlan(2, 10);
  const flights = new Flights(plan);
  const a = flights.carry([call('a')]);
  const b = flights.carry([call('b')]);
  await tick();
  t.same(flown, [['a'], ['b']]);
  await landAll();
  t.same(values(await a), ['a alone']);
  t.same(values(await b), ['b alone']);
  t.same(flights.load, { inFlight: 0, waiting: 0 });
});

t.test('calls that come while all flights are out leave together, in one lock order', async (t) => {
  const { plan, flown, landAll } = heldPlan(1, 10);
  const flights = new Flights(plan);
  const first = flights.carry([call('m')]);
  const waiting = [
    flights.carry([call('z')]),
    flights.carry([call('b', 'b1'), call('b', 'b2')]),
    flights.carry([call('a')]),
    flights.carry([call('b', 'b3')]),
  ];
  await tick();
  t.same(flights.load, { inFlight: 1, waiting: 4 });
  await landAll();
  t.same(flown, [['m'], ['a', 'b1', 'b2', 'b3', 'z']], 'by account, and in arrival order within one');
  t.same(values(await first), ['m alone']);
  t.same(
    (await Promise.all(waiting)).map(values),
    [['z together'], ['b1 together', 'b2 together'], ['a together'], ['b3 together']],
    'each caller gets the results of its own calls',
  );
});

t.test('a statement carries at most maxCalls; whole groups wait for the next one', async (t) => {
  const { plan, flown, landAll } = heldPlan(1, 3);
  const flights = new Flights(plan);
  const all = [
    flights.carry([call('x')]),
    flights.carry([call('a'), call('a', 'a2')]),
    flights.carry([call('b'), call('b', 'b2')]),
    flights.carry([call('c')]),
  ];
  await landAll();
  await Promise.all(all);
  t.same(flown, [['x'], ['a', 'a2'], ['b', 'b2', 'c']]);
});

t.test('when the shared statement fails, each call goes alone and gets its own answer', async (t) => {
  const { plan, flown, landAll } = heldPlan(1, 10, { togetherFails: true });
  const flights = new Flights(plan);
  const first = flights.carry([call('x')]);
  const waiting = [
    flights.carry([call('b')]),
    flights.carry([call('a', 'a', { fails: true })]),
    flights.carry([call('c')]),
  ];
  await landAll();
  await first;
  t.same(flown, [['x'], ['a', 'b', 'c'], ['b'], ['a'], ['c']], 'then alone, in arrival order');
  t.same((await Promise.all(waiting)).map(values), [['b alone'], ['error: Error: a refused'], ['c alone']]);
});

t.test('a call whose time is up never flies; the others go on without it', async (t) => {
  const { plan, flown, landAll } = heldPlan(1, 10);
  const flights = new Flights(plan);
  const first = flights.carry([call('x')]);
  const group = flights.carry([call('a', 'late', { late: true }), call('a', 'on time')]);
  await landAll();
  await first;
  t.same(flown, [['x'], ['on time']], 'the one call left flies alone');
  t.same(values(await group), ['error: Error: late is late', 'on time alone']);
});

t.test("a statement that waited runs in its first caller's async context, not the one that landed", async (t) => {
  const storage = new AsyncLocalStorage<string>();
  const seen: (string | undefined)[] = [];
  const { plan, landAll } = heldPlan(1, 10);
  const together = plan.together;
  const flights = new Flights<Call>({
    ...plan,
    together: (calls) => {
      seen.push(storage.getStore());
      return together(calls);
    },
  });
  const first = storage.run('first caller', () => flights.carry([call('x')]));
  const waiting = ['a', 'b'].map((account) => storage.run(`${account} caller`, () => flights.carry([call(account)])));
  await landAll();
  await Promise.all([first, ...waiting]);
  t.same(seen, ['a caller']);
});
