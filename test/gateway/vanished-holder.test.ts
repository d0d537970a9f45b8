/**
 * A gateway that dies between the wallet's commit and its `complete` leaves a bet applied, with its
 * answer nowhere but in the ledger. A copy that then cannot reach the wallet for its whole budget
 * answers an error, and rule 5 says that request must never take effect. Today the copy's void finds
 * the row applied by another attempt and leaves it (`kept`), so the bet stays applied after an error
 * answer. The 10-minute soak found it (a gateway kill, then a wallet kill). The scenario runs; its
 * last two assertions are marked todo until O1 and R2 of docs/idempotency.md change.
 */
import t from 'tap';
import { uid } from '../../gateway/src/test-helpers/index.js';
import { moneyBody, startStack, until } from '../helpers/gateway-stack.js';

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
  // Known to fail (todo): these two assertions are the fix's acceptance test.
  const todo = "the void leaves another attempt's application (kept) although that attempt's answer never left";
  t.not(row.status, 'applied', 'rule 5: a bet answered with an error does not stay applied', { todo });
  t.equal(await stack.balance(user, 'USD'), '50.00', 'the money is back', { todo });
});
