/**
 * A win answered 504 must never be paid, even when the wallet was frozen while it waited and wakes up
 * with the call still in its socket buffer: the wallet must judge it by the gateway's absolute
 * deadline (`x-deadline-ms`), not by the gRPC timeout it counts from when it reads the call. Otherwise
 * the late win commits, bets sent meanwhile spend it, and its void can never be applied.
 * Real processes on 127.0.0.1: one wallet, one gateway, PostgreSQL and a Redis of the stack's own.
 */
import { randomBytes } from 'node:crypto';
import { parseAmount } from '@phia/proto';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { WalletCallError } from '../helpers/wallet-client.js';
import { codeOf, pendingVoidsIn, post, sign, type Reply } from './phia-client.js';
import { ChaosStack, waitFor } from './stack.js';

const WALLET_DEADLINE_MS = 2000;

const stack = new ChaosStack({
  runId: `late${randomBytes(4).toString('hex')}`,
  walletDeadlineMs: WALLET_DEADLINE_MS,
  gateways: 1,
  redisPersistence: 'aof',
});
await stack.start();
t.teardown(() => stack.close({ dropSchema: true }));

function send(action: 'balance' | 'bet' | 'win', fields: Record<string, string>): Promise<Reply> {
  const body = JSON.stringify({ currency: 'USD', ...fields });
  return post(`${stack.gatewayUrl(0)}/phia/${action}`, body, sign(stack.signingKey, body), 10_000);
}

async function gatewayMetrics(): Promise<string> {
  return (await fetch(`${stack.gatewayUrl(0)}/metrics`, { signal: AbortSignal.timeout(2000) })).text();
}

/** The ledger's status of a transaction, or 'absent'. */
async function stored(kind: string, txId: string): Promise<string> {
  const admin = stack.admin();
  try {
    return (await admin.GetTransaction({ kind, tx_id: txId })).status ?? '';
  } catch (error) {
    if (error instanceof WalletCallError && error.code === 'ACCOUNT_NOT_FOUND') return 'absent';
    throw error;
  } finally {
    admin.close();
  }
}

t.test('a win answered 504 while the wallet was frozen is never paid, and nothing spends it', async (t) => {
  const user = `${stack.runId}-p`;
  const common = { user_id: user, game_session_id: `${user}-gs` };
  const admin = stack.admin();
  try {
    await admin.Deposit({ tx_id: `${user}-dep`, user_id: user, currency: 'USD', amount: '0.01' });
  } finally {
    admin.close();
  }

  // The gateway's channel to the wallet is connected (HTTP/2 handshake done), so the win is sent to
  // the frozen wallet and waits in its socket, rather than waiting in the gateway for a connection.
  const warm = await send('balance', { user_id: user });
  t.equal(warm.status, 200, 'the gateway reaches the wallet');

  stack.wallet.pause();
  t.teardown(() => stack.wallet.resume());
  const pendingWin = send('win', { ...common, tx_id: `${user}-win`, round_id: `${user}-r0`, amount: '10.00' });
  // The bets leave shortly before the win's 504, so they wait in the wallet's socket ahead of the
  // win's void: with the win paid late, they would spend it before the void could take it back.
  await sleep(WALLET_DEADLINE_MS - 150);
  const betIds = [1, 2, 3, 4, 5].map((n) => `${user}-bet${n}`);
  const bets = betIds.map((txId, n) =>
    send('bet', { ...common, tx_id: txId, round_id: `${user}-r${n + 1}`, amount: '2.00' }),
  );
  const win = await pendingWin;
  t.equal(win.status, 504, `the win is answered 504 (${codeOf(win) || win.error || ''})`);
  await sleep(200);
  stack.wallet.resume();
  const betAnswers = await Promise.all(bets);

  const winStatus = await stored('win', `${user}-win`);
  t.not(winStatus, 'applied', `the win is not applied (ledger: ${winStatus})`);
  const winEntries = await stack.pool.query<{ count: string }>(
    `SELECT count(*)::text AS count FROM ${stack.schema}.entries e
     JOIN ${stack.schema}.transactions x ON x.id = e.transaction_id WHERE x.kind = 'win' AND x.tx_id = $1`,
    [`${user}-win`],
  );
  t.equal(winEntries.rows[0]?.count, '0', 'the win was never committed, not even for a moment');
  for (const [n, answer] of betAnswers.entries()) {
    t.not(
      answer.status,
      200,
      `bet ${n + 1} is not paid from the win: ${answer.status ?? answer.error} ${codeOf(answer)}`,
    );
    t.not(await stored('bet', betIds[n]!), 'applied', `bet ${n + 1} is not applied`);
  }

  // Every void the gateway queued is applied within a bounded wait: none is stuck behind a spent win.
  let metrics = '';
  const drained = await waitFor('void queue', 10_000, async () => {
    metrics = await gatewayMetrics();
    return pendingVoidsIn(metrics) === 0;
  }).then(
    () => true,
    () => false,
  );
  t.ok(drained, `no void left pending (${pendingVoidsIn(metrics)})`);
  t.notMatch(metrics, /^phia_voids_unappliable_total\{[^}]*\} [1-9]/m, 'no void was refused for good');

  const schema = stack.schema;
  const account = await stack.pool.query<{ balance: string; entries: string }>(
    `SELECT a.balance::text,
            coalesce((SELECT sum(e.amount) FROM ${schema}.entries e WHERE e.account_id = a.id), 0)::text AS entries
     FROM ${schema}.accounts a WHERE a.owner_kind = 'player' AND a.user_id = $1`,
    [user],
  );
  const row = account.rows[0];
  t.equal(row && parseAmount(row.balance, 2), 1n, `the balance is the deposit alone (${row?.balance})`);
  t.equal(row && parseAmount(row.entries, 2), 1n, `the balance equals the sum of its ledger entries (${row?.entries})`);
  const sums = await stack.pool.query<{ currency: string; sum: string }>(
    `SELECT a.currency, sum(e.amount)::text AS sum FROM ${schema}.entries e JOIN ${schema}.accounts a ON a.id = e.account_id
     GROUP BY a.currency`,
  );
  for (const row of sums.rows) t.equal(Number(row.sum), 0, `the ${row.currency} entries sum to zero`);
});
