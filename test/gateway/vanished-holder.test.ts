/**
 * Rule 5 when a holder vanishes: a gateway that dies between the wallet's commit and its `complete`
 * leaves a bet applied whose 200 never left (a 200 leaves only once Redis holds it: C in
 * docs/idempotency.md). A copy that then cannot reach the wallet for its whole budget answers an
 * error, and its void undoes that application (the void's horizon), so the bet never takes effect.
 * And C itself: a 200 whose `complete` misses Redis is settled as an error, and the bet undone.
 */
import t from 'tap';
import { expectError, post, uid } from '../../gateway/src/test-helpers/index.js';
import { holdAccount, moneyBody, proxiedRedisApp, startStack, until } from '../helpers/gateway-stack.js';

const stack = await startStack({ label: 'gw_vanish', env: { WALLET_DEADLINE_MS: '300' } });
t.teardown(() => stack.close());

/** The holder's one wallet call, straight to the wallet under its own attempt id (its gateway then dies). */
function holderBet(bet: Record<string, unknown>, attemptId: string) {
  const text = (name: string) => String(bet[name]);
  return stack.admin.Bet({
    tx_id: text('tx_id'),
    user_id: text('user_id'),
    currency: text('currency'),
    amount: text('amount'),
    round_id: text('round_id'),
    game_session_id: text('game_session_id'),
    game_id: text('game_id'),
    attempt_id: attemptId,
  });
}

t.test('a copy answered with an error after its holder vanished: the bet does not stay applied', async (t) => {
  const user = uid('vanish');
  await stack.fund(user, 'USD', '50');
  const bet = moneyBody({ user_id: user, amount: '10.00' });
  // The holder's one wallet call, under its own attempt id; its gateway dies before `complete`.
  await holderBet(bet, 'the-vanished-holder');
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
  await t.rejects(holderBet(bet, 'the-declined-holder'), { code: 'INSUFFICIENT_FUNDS' });
  await stack.stopWallet();
  const answer = await stack.post('/phia/bet', bet);
  await stack.startWallet();
  t.not(answer.statusCode, 200, 'the copy answered an error');
  t.ok(await until(async () => (await stack.app.voids.pendingCount()) === 0, 15_000), 'its void is delivered');
  const replay = await stack.post('/phia/bet', bet);
  t.same([replay.statusCode, replay.body], [answer.statusCode, answer.body], 'the first answer, not the decline');
  t.equal(await stack.balance(user, 'USD'), '5.00', 'nothing moved');
});

t.test('C: a decided answer leaves only once Redis holds it', async (t) => {
  const { proxy, app } = await proxiedRedisApp(stack, t);
  const answerOf = async (txId: unknown) =>
    JSON.parse((await stack.redis?.get(`${stack.keyPrefix}ans:bet:${String(txId)}`)) ?? '{}') as { s?: number };

  /** Posts the bet, which takes its key and waits on the player's row; Redis stops answering; the row is freed. */
  async function betWhileRedisPaused(user: string, bet: Record<string, unknown>) {
    const hold = await holdAccount(stack, user);
    const first = post(app, '/phia/bet', bet);
    const lockKey = `${stack.keyPrefix}lock:bet:${String(bet.tx_id)}`;
    if (!(await until(async () => (await stack.redis?.exists(lockKey)) === 1, 5000))) throw new Error('no lock');
    proxy.pause();
    const copy = post(app, '/phia/bet', bet); // waits for the first's answer (R4)
    await hold.release();
    return { first, copy };
  }

  t.test('Redis back within the budget: the answer leaves once stored, and copies get it', async (t) => {
    const user = uid('cback');
    await stack.fund(user, 'USD', '50');
    const bet = moneyBody({ user_id: user, amount: '10.00' });
    const { first, copy } = await betWhileRedisPaused(user, bet);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    proxy.resume();
    const [answer, duplicate] = await Promise.all([first, copy]);
    t.equal(answer.statusCode, 200, 'the 200, stored after Redis resumed');
    t.same([duplicate.statusCode, duplicate.body], [200, answer.body], 'the copy that waited gets it too');
    t.equal((await answerOf(bet.tx_id)).s, 200);
    t.equal(await stack.balance(user, 'USD'), '40.00', 'one debit');
  });

  t.test('Redis away past the budget: the bet is undone, its error leaves and replaces the 200', async (t) => {
    const user = uid('caway');
    await stack.fund(user, 'USD', '50');
    const bet = moneyBody({ user_id: user, amount: '10.00' });
    const { first, copy } = await betWhileRedisPaused(user, bet);
    const answer = await first;
    expectError(t, answer, 503, 'WALLET_UNAVAILABLE', 'unavailable');
    t.equal(await stack.balance(user, 'USD'), '50.00', 'the bet was undone before its error left');
    t.equal((await stack.admin.GetTransaction({ kind: 'bet', tx_id: bet.tx_id as string })).status, 'voided');
    // The timed-out tries of the 200 run once Redis resumes; the void's answer, sent after them, replaces it.
    proxy.resume();
    await copy;
    t.ok(await until(async () => (await answerOf(bet.tx_id)).s === 503, 5000), 'stored');
    const later = await stack.post('/phia/bet', bet);
    t.same([later.statusCode, later.body], [503, answer.body], 'copies replay the error');
  });
});
