/**
 * Rule 5 when a holder vanishes: a gateway that dies between the wallet's commit and its `complete`
 * leaves a bet applied whose 200 never left (a 200 leaves only once Redis holds it: C in
 * docs/idempotency.md). A copy that then cannot reach the wallet for its whole budget answers an
 * error, and its void undoes that application (the void's horizon), so the bet never takes effect.
 * And C itself: a 200 whose `complete` misses Redis is settled as an error, and the bet undone.
 */
import t from 'tap';
import { expectError, post, uid } from '../../gateway/src/test-helpers/index.js';
import { startTcpProxy } from '../../gateway/src/test-helpers/tcp-proxy.js';
import { holdAccount, moneyBody, REDIS_URL, startStack, until, waitForAppRedis } from '../helpers/gateway-stack.js';

const stack = await startStack({ label: 'gw_vanish', env: { WALLET_DEADLINE_MS: '300' } });
t.teardown(() => stack.close());

t.test('a copy answered with an error after its holder vanished: the bet does not stay applied', async (t) => {
  const user = uid('vanish');
  await stack.fund(user, 'USD', '50');
  const bet = moneyBody({ user_id: user, amount: '10.00' });
  // The holder's one wallet call, under its own attempt id; its gateway dies before `complete`.
  await stack.admin.Bet({
    tx_id: bet.tx_id as string,
    user_id: user,
    currency: 'USD',
    amount: '10.00',
    round_id: bet.round_id as string,
    game_session_id: bet.game_session_id as string,
    game_id: bet.game_id as string,
    attempt_id: 'the-vanished-holder',
  });
  t.equal(await stack.balance(user, 'USD'), '40.00', 'the holder applied the bet');

  await stack.stopWallet();
  const answer = await stack.post('/phia/bet', bet);
  await stack.startWallet();
  t.not(answer.statusCode, 200, 'the copy could not learn the outcome in time: an error answer');
  t.ok(await until(async () => (await stack.app.voids.pendingCount()) === 0, 15_000), 'its void is delivered');
  const row = await stack.admin.GetTransaction({ kind: 'bet', tx_id: bet.tx_id as string });
  t.equal(row.status, 'voided', 'rule 5: a bet answered with an error does not stay applied');
  t.equal(await stack.balance(user, 'USD'), '50.00', 'the money is back');
  const copy = await stack.post('/phia/bet', bet);
  t.same([copy.statusCode, copy.body], [answer.statusCode, answer.body], 'a later copy gets the error answered');
});

t.test("a copy answered with an error after its holder vanished: replays get the copy's error", async (t) => {
  const user = uid('vanish402');
  await stack.fund(user, 'USD', '5');
  const bet = moneyBody({ user_id: user, amount: '10.00' });
  // The holder's call was declined and its gateway died before `complete`: the decline never left.
  await t.rejects(
    stack.admin.Bet({
      tx_id: bet.tx_id as string,
      user_id: user,
      currency: 'USD',
      amount: '10.00',
      round_id: bet.round_id as string,
      game_session_id: bet.game_session_id as string,
      game_id: bet.game_id as string,
      attempt_id: 'the-declined-holder',
    }),
    { code: 'INSUFFICIENT_FUNDS' },
  );
  await stack.stopWallet();
  const answer = await stack.post('/phia/bet', bet);
  await stack.startWallet();
  t.not(answer.statusCode, 200, 'the copy answered an error');
  t.ok(await until(async () => (await stack.app.voids.pendingCount()) === 0, 15_000), 'its void is delivered');
  const replay = await stack.post('/phia/bet', bet);
  t.same([replay.statusCode, replay.body], [answer.statusCode, answer.body], 'the first answer, not the decline');
  t.equal(await stack.balance(user, 'USD'), '5.00', 'nothing moved');
});

t.test('C: a 200 Redis cannot store does not leave; the bet is undone and its error replayed', async (t) => {
  const target = new URL(REDIS_URL);
  const proxy = await startTcpProxy(target.hostname, Number(target.port || 6379));
  t.teardown(() => proxy.close());
  const app = await stack.newApp({}, { REDIS_URL: `${proxy.url('redis')}${target.pathname}` });
  await waitForAppRedis(app);
  const user = uid('c200');
  await stack.fund(user, 'USD', '50');
  const bet = moneyBody({ user_id: user, amount: '10.00' });

  // The bet takes its key, then waits on the player's row while Redis stops answering.
  const hold = await holdAccount(stack, user);
  const pending = post(app, '/phia/bet', bet);
  t.ok(await until(async () => (await stack.redis?.exists(`${stack.keyPrefix}lock:bet:${bet.tx_id}`)) === 1, 5000));
  proxy.pause();
  await hold.release();
  const answer = await pending;
  expectError(t, answer, 503, 'WALLET_UNAVAILABLE', 'unavailable');
  t.equal(await stack.balance(user, 'USD'), '50.00', 'the bet was undone before its error left');
  t.equal((await stack.admin.GetTransaction({ kind: 'bet', tx_id: bet.tx_id as string })).status, 'voided');

  // The timed-out `complete` of the 200 runs once Redis resumes; the void's answer replaces it.
  proxy.resume();
  const answerKey = `${stack.keyPrefix}ans:bet:${bet.tx_id}`;
  t.ok(await until(async () => JSON.parse((await stack.redis?.get(answerKey)) ?? '{}').s === 503, 5000), 'stored');
  const copy = await stack.post('/phia/bet', bet);
  t.same([copy.statusCode, copy.body], [503, answer.body], 'copies replay the error');
});
