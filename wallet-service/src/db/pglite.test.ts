import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { walletTestClient, WalletCallError } from '../../../test/helpers/wallet-client.js';
import { startWalletServer } from '../wallet.js';

// The embedded default: the same SQL on PGlite in a data folder, surviving a restart.
const dataDir = await mkdtemp(join(tmpdir(), 'wallet-pglite-'));
t.teardown(() => rm(dataDir, { recursive: true, force: true }));

t.test('smoke: money moves, duplicates replay and the books balance on PGlite, also after a restart', async (t) => {
  let wallet = await startWalletServer({ port: 0, dataDir });
  t.equal(wallet.db.kind, 'pglite');
  let client = walletTestClient(wallet.address);
  await client.Deposit({ tx_id: 'p-dep', user_id: 'p1', currency: 'BTC', amount: '0.5' });
  const bet = {
    tx_id: 'p-bet',
    user_id: 'p1',
    currency: 'BTC',
    amount: '0.00000123',
    round_id: 'r',
    game_session_id: 'g',
  };
  const first = await client.Bet(bet);
  t.equal(first.balance, '0.49999877');
  t.same(await Promise.all([client.Bet(bet), client.Bet(bet)]), [first, first]);
  const refund = await client.Refund({ ...bet, tx_id: 'p-ref', bet_tx_id: 'never-seen' });
  t.equal(refund.balance, '0.49999877', 'refund of an unseen bet: unchanged balance');
  const late = await client.Bet({ ...bet, tx_id: 'never-seen' }).catch((error: unknown) => error);
  t.equal((late as WalletCallError).code, 'BET_REFUNDED');
  t.same(await wallet.ledger.checkBooks(), { unbalancedCurrencies: [], driftedAccounts: [], negativeAccounts: [] });
  client.close();
  await wallet.close();

  wallet = await startWalletServer({ port: 0, dataDir });
  client = walletTestClient(wallet.address);
  t.teardown(async () => {
    client.close();
    await wallet.close();
  });
  t.same(await client.Bet(bet), first, 'replayed from the data folder after a restart');
  t.equal((await client.GetBalance({ user_id: 'p1', currency: 'BTC' })).balance, '0.49999877');
});

t.test("on PGlite too, one player's concurrent bets all apply, those that waited going as one batch", async (t) => {
  const wallet = await startWalletServer({ port: 0, dataDir: await mkdtemp(join(tmpdir(), 'wallet-pglite-batch-')) });
  t.teardown(() => wallet.close());
  await wallet.ledger.deposit({ tx_id: 'b-dep', user_id: 'b1', currency: 'USD', amount: '100.00' });
  let batches = 0;
  const query = wallet.db.query.bind(wallet.db);
  wallet.db.query = (sql, params, options) => {
    if (options?.name === 'phia_wallet_money_batch') batches++;
    return query(sql, params, options);
  };
  // Sent in one turn of the event loop: two reach the database, ten wait in the account gate.
  const bets = Array.from({ length: 12 }, (_, i) =>
    wallet.ledger.bet({
      tx_id: `b-bet-${i}`,
      user_id: 'b1',
      currency: 'USD',
      amount: '1.00',
      round_id: `r${i}`,
      game_session_id: 'g',
    }),
  );
  const balances = (await Promise.all(bets)).map((answer) => answer.balance).sort();
  t.same(
    balances,
    Array.from({ length: 12 }, (_, i) => `${88 + i}.00`),
    'each bet answered the balance after it',
  );
  t.equal(batches, 1, 'the ten that waited went as one batch');
  t.same(await wallet.ledger.checkBooks(), { unbalancedCurrencies: [], driftedAccounts: [], negativeAccounts: [] });
});
