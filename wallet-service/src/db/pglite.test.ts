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
