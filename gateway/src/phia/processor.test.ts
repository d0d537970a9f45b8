/**
 * The processor against the cells of docs/idempotency.md, one test per cell, over the in-process
 * store and a small ledger with the wallet's Void semantics (the real wallet is exercised in the stack
 * and chaos tests).
 */
import t from 'tap';
import { buildCurrencyTable, moneyFingerprint, type ErrorCode } from '@phia/proto';
import { InProcessIdempotencyStore } from '../idempotency/memory-store.js';
import type { BeginResult } from '../idempotency/store.js';
import { quietLogger } from '../test-helpers/index.js';
import { VoidQueue } from '../voids/queue.js';
import { WalletError, type MoneyRequest, type VoidRequest, type WalletClient } from '../wallet-client/client.js';
import { PhiaProcessor, SETTLE_BUDGET_MS } from './processor.js';

interface Row {
  fp: string;
  status: 'applied' | 'declined' | 'voided';
  code?: ErrorCode;
  attempt: string;
}

const undecided = (code: ErrorCode = 'WALLET_UNAVAILABLE') => new WalletError(code, false, 14, 'down');

/** One row per (kind, tx_id), as the wallet keeps them; `down` fails every call, `lostReply` commits then fails. */
class FakeLedger {
  readonly rows = new Map<string, Row>();
  readonly calls: string[] = [];
  readonly voids: VoidRequest[] = [];
  readonly deadlineMs = 1000;
  down = false;
  moneyDown = false;
  lostReply = false;

  async money(method: string, request: MoneyRequest) {
    this.calls.push(method);
    if (this.down || this.moneyDown) throw undecided();
    const key = `${method.toLowerCase()}:${request.tx_id}`;
    const fp = moneyFingerprint('bet', { ...request, bet_tx_id: '' });
    const row = this.rows.get(key);
    if (row !== undefined && row.fp !== fp) throw new WalletError('IDEMPOTENCY_MISMATCH', true, 6, 'reused');
    if (row === undefined) this.rows.set(key, { fp, status: 'applied', attempt: request.attempt_id ?? '' });
    else if (row.status !== 'applied') throw new WalletError(row.code ?? 'INTERNAL', true, 9, 'stored');
    if (this.lostReply) throw undecided();
    return { balance: '90.00', currency: 'USD', tx_id: request.tx_id };
  }

  async void(request: VoidRequest) {
    this.calls.push('Void');
    this.voids.push(request);
    if (this.down) throw undecided();
    const key = `${request.kind}:${request.tx_id}`;
    const row = this.rows.get(key);
    const fp = request.fingerprint ?? '';
    const code = request.error_code as ErrorCode;
    // As the wallet: the error the row answers after the void.
    const outcome = (outcome: string) => ({
      kind: request.kind,
      tx_id: request.tx_id,
      outcome,
      balance: '',
      currency: '',
      error_code: this.rows.get(key)?.code ?? '',
    });
    if (row === undefined) {
      this.rows.set(key, { fp, status: 'voided', code, attempt: request.attempt_id ?? '' });
      return outcome('tombstoned');
    }
    if (row.fp !== fp) return outcome('not_matching');
    if (row.status === 'voided') return outcome('already_voided');
    if (row.status === 'declined') return outcome('declined');
    if (row.attempt !== request.attempt_id) return outcome('kept');
    this.rows.set(key, { ...row, status: 'voided', code });
    return outcome('reversed');
  }

  async call(method: string, request: { kind: string; tx_id: string }) {
    this.calls.push(method);
    if (this.down) throw undecided();
    const row = this.rows.get(`${request.kind}:${request.tx_id}`);
    if (row === undefined) throw new WalletError('ACCOUNT_NOT_FOUND', true, 5, 'none');
    return { ...request, status: row.status, error_code: row.code ?? '', balance: '90.00', currency: 'USD' };
  }

  moneyCalls(): number {
    return this.calls.filter((method) => method === 'Bet').length;
  }
}

/** The in-process store, unreachable (Redis down, slow or paused): rows N1-N5. */
class UnreachableStore extends InProcessIdempotencyStore {
  override async begin(): Promise<BeginResult> {
    return { kind: 'unreachable', reason: 'Connection is closed.', token: 'a-late-begin' };
  }
}

function setup(t: { teardown: (fn: () => unknown) => void }, unreachable = false) {
  const store = unreachable
    ? new UnreachableStore({ ttlSeconds: 60 })
    : new InProcessIdempotencyStore({ ttlSeconds: 60 });
  const ledger = new FakeLedger();
  const voids = new VoidQueue({ send: (job) => ledger.void(job), answers: store });
  t.teardown(() => store.close());
  const processor = new PhiaProcessor({
    wallet: ledger as unknown as WalletClient,
    store,
    voids,
    currencies: buildCurrencyTable(),
  });
  // Most of the settle budget already spent, so that a wallet out of reach ends it at once.
  const late = () => ({ requestId: 'r', log: quietLogger(), arrivedAt: Date.now() - SETTLE_BUDGET_MS + 300 });
  const send = (amount = '10.00', ctx = { requestId: 'r', log: quietLogger() }) =>
    processor.money('bet', body(amount), ctx);
  return { store, voids, ledger, send, late };
}

const body = (amount: string) => ({
  user_id: 'u1',
  currency: 'USD',
  game_session_id: 'gs-1',
  round_id: 'r-1',
  tx_id: 't-1',
  amount,
});
const ok = '{"balance":"90.00","currency":"USD","tx_id":"t-1"}';

t.test('R1, R6: the first copy is applied and stored; copies replay it without the wallet', async (t) => {
  const { ledger, send } = setup(t);
  const first = await send();
  t.same([first.status, first.body], [200, ok]);
  const copy = await send();
  t.same([copy.status, copy.body, copy.replayed], [200, ok, true]);
  t.equal(ledger.moneyCalls(), 1);
});

t.test('R9: an IDEMPOTENCY_MISMATCH from the wallet is not stored: the owner still gets its answer', async (t) => {
  const { ledger, send } = setup(t);
  // The owner was decided in the ledger, its answer never stored (R2).
  await ledger.money('Bet', { ...body('10.00'), attempt_id: 'a0' });
  t.equal((await send('11.00')).code, 'IDEMPOTENCY_MISMATCH');
  const owner = await send('10.00');
  t.same([owner.status, owner.body], [200, ok], 'the wallet replays the owner (R2), stored from now on');
  t.equal((await send('11.00')).code, 'IDEMPOTENCY_MISMATCH', 'R8: refused by the store');
  t.equal(ledger.moneyCalls(), 3);
});

t.test('S: a request committed whose reply was lost is reversed before its error leaves (gap E)', async (t) => {
  const { ledger, voids, send } = setup(t);
  ledger.lostReply = true;
  const first = await send();
  t.equal(first.code, 'WALLET_UNAVAILABLE');
  t.same(ledger.rows.get('bet:t-1')?.status, 'voided', 'reversed by its own void');
  t.equal(await voids.pendingCount(), 0, 'settled: no void left to queue');
  t.same(ledger.calls, ['Bet', 'Void'], "the void's reply names the error: the row is not read again");
  ledger.lostReply = false;
  t.same([(await send()).body, ledger.moneyCalls()], [first.body, 1], 'the ledger decided: stored, replayed');
});

t.test("S: an undecided failure meets a row another attempt applied: that attempt's 200 is the answer", async (t) => {
  const { ledger, send } = setup(t);
  await ledger.money('Bet', { ...body('10.00'), attempt_id: 'a0' });
  ledger.moneyDown = true;
  const answer = await send();
  t.same([answer.status, answer.body], [200, ok]);
  t.equal(ledger.rows.get('bet:t-1')?.status, 'applied', 'kept');
  t.same(ledger.calls.slice(-3), ['Bet', 'Void', 'GetTransaction'], "the 200's balance is read from the row");
});

t.test(
  'S → O1, R7: a wallet out of reach for the whole budget: the void is queued, copies replay the error',
  async (t) => {
    const { ledger, voids, send, late } = setup(t);
    ledger.down = true;
    const first = await send('10.00', late());
    t.equal(first.code, 'WALLET_UNAVAILABLE');
    t.equal(await voids.pendingCount(), 1, 'void queued');
    const copy = await send();
    t.same([copy.body, copy.replayed], [first.body, true]);
    t.equal(ledger.moneyCalls(), 1, 'the copy never reached the wallet');
    ledger.down = false;
    t.equal(await voids.drainOnce(), 1);
    t.equal(ledger.rows.get('bet:t-1')?.status, 'voided', 'tombstoned: it never applies');
    const later = await send();
    t.same([later.body, later.replayed], [first.body, true], 'O1: confirmed, the error stays the answer');
    t.equal(ledger.moneyCalls(), 1);
  },
);

t.test('N1, N2: without the store no money call: the request is tombstoned and answered 503', async (t) => {
  const { ledger, send } = setup(t, true);
  t.equal((await send()).code, 'WALLET_UNAVAILABLE');
  t.equal(ledger.rows.get('bet:t-1')?.status, 'voided');
  t.equal((await send()).code, 'WALLET_UNAVAILABLE', 'a copy: the same answer from the ledger');
  t.equal(ledger.moneyCalls(), 0);
});

t.test('N2: without the store, a request answered with an error elsewhere gets that error', async (t) => {
  const { ledger, send } = setup(t, true);
  ledger.rows.set('bet:t-1', {
    fp: moneyFingerprint('bet', { ...body('10.00'), bet_tx_id: '' }),
    status: 'voided',
    code: 'WALLET_TIMEOUT',
    attempt: 'a0',
  });
  t.equal((await send()).code, 'WALLET_TIMEOUT');
});

t.test('N3: without the store, a row another attempt applied is answered REQUEST_IN_PROGRESS', async (t) => {
  const { ledger, send } = setup(t, true);
  await ledger.money('Bet', { ...body('10.00'), attempt_id: 'a0' });
  t.equal((await send()).code, 'REQUEST_IN_PROGRESS');
  t.equal(ledger.rows.get('bet:t-1')?.status, 'applied', 'nothing moved');
});

t.test('N4: without the store, other content is a mismatch', async (t) => {
  const { ledger, send } = setup(t, true);
  await ledger.money('Bet', { ...body('10.00'), attempt_id: 'a0' });
  t.equal((await send('11.00')).code, 'IDEMPOTENCY_MISMATCH');
});

t.test('N5: without the store nor the wallet: REQUEST_IN_PROGRESS, its void queued as a refusal', async (t) => {
  const { ledger, voids, send, late } = setup(t, true);
  ledger.down = true;
  t.equal((await send('10.00', late())).code, 'REQUEST_IN_PROGRESS');
  t.equal(await voids.pendingCount(), 1);
  t.equal(ledger.moneyCalls(), 0);
  ledger.down = false;
  t.equal(await voids.drainOnce(), 1);
  t.equal(ledger.voids.at(-1)?.refusal, true, 'its answer was no error: the void claims no answer for the key');
});
