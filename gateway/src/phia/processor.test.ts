import t from 'tap';
import { buildCurrencyTable } from '@phia/proto';
import { LateAnswerWriter } from '../idempotency/late-answers.js';
import { InProcessIdempotencyStore } from '../idempotency/memory-store.js';
import type { IdempotencyStore } from '../idempotency/store.js';
import { quietLogger } from '../test-helpers/index.js';
import { VoidQueue } from '../voids/queue.js';
import { WalletError, type MoneyRequest, type WalletClient } from '../wallet-client/client.js';
import { PhiaProcessor } from './processor.js';

/** A wallet that keeps the first content per tx_id, as the real one does, and refuses other content. */
function fakeWallet() {
  const stored = new Map<string, string>();
  return {
    calls: 0,
    async money(_method: string, request: MoneyRequest) {
      this.calls++;
      const content = `${request.amount}`;
      const first = stored.get(request.tx_id);
      if (first !== undefined && first !== content) {
        throw new WalletError('IDEMPOTENCY_MISMATCH', true, 6, 'tx_id reused');
      }
      stored.set(request.tx_id, content);
      return { balance: '90.00', currency: 'USD', tx_id: request.tx_id };
    },
  };
}

/** A store whose lock script always times out on the client (Redis slow or paused): every begin bypasses. */
class SlowBeginStore extends InProcessIdempotencyStore {
  override async begin(): Promise<{ kind: 'bypass'; reason: string }> {
    return { kind: 'bypass', reason: 'Command timed out' };
  }
}

/** The processor under test, over a fake wallet (only the methods a test needs) and the given store and queue. */
function processorOver(
  wallet: object,
  store: IdempotencyStore,
  voids: VoidQueue,
  lateAnswers?: LateAnswerWriter,
): PhiaProcessor {
  return new PhiaProcessor({
    wallet: wallet as unknown as WalletClient,
    store,
    voids,
    ...(lateAnswers === undefined ? {} : { lateAnswers }),
    currencies: buildCurrencyTable(),
    deadlineMs: 1000,
  });
}

const body = (amount: string) => ({
  user_id: 'u1',
  currency: 'USD',
  game_session_id: 'gs-1',
  round_id: 'r-1',
  tx_id: 't-1',
  amount,
});

t.test('an IDEMPOTENCY_MISMATCH from the wallet is not cached: the real request still replays', async (t) => {
  // Found by the chaos soak (seed 83729711): the original was answered while Redis was unreachable, so
  // its answer never reached the store; a request with the same tx_id and other content then took the
  // lock, the wallet refused it, and the gateway cached that refusal under the key with the other
  // content's fingerprint. Every later duplicate of the original was refused as a mismatch.
  const store = new InProcessIdempotencyStore({ ttlSeconds: 60 });
  const voids = new VoidQueue({ send: async () => undefined });
  const wallet = fakeWallet();
  t.teardown(() => store.close());
  const processor = processorOver(wallet, store, voids);
  const ctx = { requestId: 'r', log: quietLogger() };

  // The original reaches the wallet without the store (as during a Redis outage).
  await wallet.money('Bet', { ...body('10.00') });

  const other = await processor.money('bet', body('11.00'), ctx);
  t.equal(other.status, 409);
  t.equal(other.code, 'IDEMPOTENCY_MISMATCH');

  const duplicate = await processor.money('bet', body('10.00'), ctx);
  t.equal(duplicate.status, 200, 'the original content still gets its own answer');
  t.same(JSON.parse(duplicate.body), { balance: '90.00', currency: 'USD', tx_id: 't-1' });

  const again = await processor.money('bet', body('10.00'), ctx);
  t.equal(again.status, 200);
  t.equal(again.replayed, true, 'and that answer is cached for the next duplicate');
  t.equal((await processor.money('bet', body('11.00'), ctx)).code, 'IDEMPOTENCY_MISMATCH');
});

t.test('a request that bypassed a slow store and met a wallet outage replays the answer the store holds', async (t) => {
  // Found by the chaos soak (seed 105): on a loaded machine Redis answered the lock script after the
  // 250 ms command timeout (bypass); the wallet was down, so the copy was about to be answered 503,
  // while the store held the first answer, 200.
  const store = new SlowBeginStore({ ttlSeconds: 60 });
  const voids = new VoidQueue({ send: async () => undefined });
  const wallet = {
    calls: 0,
    async money() {
      this.calls++;
      throw new WalletError('WALLET_UNAVAILABLE', false, 14, 'connection refused');
    },
  };
  t.teardown(() => store.close());
  const processor = processorOver(wallet, store, voids);
  const ctx = { requestId: 'r', log: quietLogger() };
  const first = { status: 200, body: '{"balance":"90.00","currency":"USD","tx_id":"t-1"}' };
  const { moneyFingerprint } = await import('@phia/proto');
  const fingerprint = moneyFingerprint('bet', {
    user_id: 'u1',
    currency: 'USD',
    amount: '10.00',
    round_id: 'r-1',
    game_session_id: 'gs-1',
    bet_tx_id: '',
  });
  t.equal(await store.storeLate('bet:t-1', undefined, fingerprint, first), 'stored');

  const copy = await processor.money('bet', body('10.00'), ctx);
  t.equal(wallet.calls, 1, 'the wallet was asked first');
  t.equal(copy.status, 200, 'the stored first answer, not 503');
  t.equal(copy.body, first.body);

  const other = await processor.money('bet', { ...body('10.00'), tx_id: 't-2' }, ctx);
  t.equal(other.status, 503, 'nothing stored: the wallet outage is the answer');
});

t.test(
  'without the store, a copy waits for the same request running on this gateway; other content is refused',
  async (t) => {
    // Found by the chaos soak (seed 107): Redis answered too late for both copies; the copy raced the
    // original to the wallet and applied the request the original was answered 504 for.
    const store = new SlowBeginStore({ ttlSeconds: 60 });
    const voids = new VoidQueue({ send: async () => undefined });
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    const wallet = {
      calls: 0,
      async money() {
        this.calls++;
        await gate;
        throw new WalletError('WALLET_TIMEOUT', false, 4, 'deadline exceeded');
      },
    };
    t.teardown(() => store.close());
    const processor = processorOver(wallet, store, voids);
    const ctx = { requestId: 'r', log: quietLogger() };

    const original = processor.money('bet', body('10.00'), ctx);
    const copy = processor.money('bet', body('10.00'), ctx);
    const variant = await processor.money('bet', body('11.00'), ctx);
    t.equal(variant.code, 'IDEMPOTENCY_MISMATCH', 'other content under a running key');
    release();
    const [first, second] = await Promise.all([original, copy]);
    t.equal(wallet.calls, 1, 'one wallet call for both copies');
    t.equal(first.status, 504);
    t.equal(second.status, 504, 'the copy gets the running request’s answer');
    t.equal(second.body, first.body);
    t.equal(second.replayed, true);
    t.equal(voids.pendingFor('bet', 't-1')?.error_code, 'WALLET_TIMEOUT', 'one void, for the attempt that ran');
  },
);

t.test('a bypassed request that finds the key stored for other content is refused as a reuse', async (t) => {
  const store = new SlowBeginStore({ ttlSeconds: 60 });
  const voids = new VoidQueue({ send: async () => undefined });
  const wallet = {
    async money() {
      throw new WalletError('WALLET_UNAVAILABLE', false, 14, 'connection refused');
    },
  };
  t.teardown(() => store.close());
  const processor = processorOver(wallet, store, voids);
  const first = { status: 402, body: '{"error":"insufficient funds","code":"INSUFFICIENT_FUNDS"}' };
  t.equal(await store.storeLate('bet:t-1', undefined, 'the-original-fingerprint', first), 'stored');
  const variant = await processor.money('bet', body('11.00'), { requestId: 'r', log: quietLogger() });
  t.equal(variant.status, 409);
  t.equal(variant.code, 'IDEMPOTENCY_MISMATCH');
});

t.test('without the store while voids are pending, a refund tombstone is not taken for an outcome', async (t) => {
  // Found by the soak (seed 111): the bet was answered 503 (its void pending on the other gateway), then
  // refunded; a copy without Redis asked the wallet, which declined it BET_REFUNDED: a second answer.
  class PendingVoids extends VoidQueue {
    override othersMayHavePendingVoids(): boolean {
      return true;
    }
  }
  const store = new SlowBeginStore({ ttlSeconds: 60 });
  const voids = new PendingVoids({ send: async () => undefined });
  const calls: string[] = [];
  const wallet = {
    async call(method: string) {
      calls.push(method);
      return { status: 'tombstone', kind: 'bet', tx_id: 't-1' };
    },
    async void() {
      calls.push('Void');
      return { outcome: 'tombstoned' };
    },
    async money() {
      calls.push('Bet');
      throw new WalletError('BET_REFUNDED', true, 9, 'already refunded');
    },
  };
  t.teardown(() => store.close());
  const processor = processorOver(wallet, store, voids);
  const answer = await processor.money('bet', body('10.00'), { requestId: 'r', log: quietLogger() });
  t.equal(answer.status, 503, 'refused like any unseen request');
  t.same(calls, ['GetTransaction', 'Void'], 'never sent to the wallet as a bet');
});

t.test('without the store, a request never claims the tombstone another refusal left', async (t) => {
  // Found by the soak (seed 114): the original was refused without Redis (an unclaimed tombstone);
  // its variant, refused the same way a moment later, found that tombstone, went to the wallet and
  // claimed the key for its own content, and every later copy of the original got 409.
  class PendingVoids extends VoidQueue {
    override othersMayHavePendingVoids(): boolean {
      return true;
    }
  }
  const queued: { error_code: string; fingerprint: string }[] = [];
  const voids = new PendingVoids({ send: async () => new Promise(() => {}) });
  const originalEnqueue = voids.enqueue.bind(voids);
  voids.enqueue = async (job) => {
    queued.push({ error_code: job.error_code, fingerprint: job.fingerprint });
    return originalEnqueue(job);
  };
  t.teardown(() => voids.close(0));
  const store = new SlowBeginStore({ ttlSeconds: 60 });
  t.teardown(() => store.close());
  const calls: string[] = [];
  let row:
    | {
        status: string;
        kind: string;
        tx_id: string;
        error_code: string;
        fingerprint: string;
        refused_fingerprint: string;
      }
    | undefined;
  let staleReads = 0;
  let ledgerDown = false;
  const wallet = {
    async call(method: string) {
      calls.push(method);
      if (ledgerDown) throw new WalletError('WALLET_TIMEOUT', false, 4, 'deadline exceeded');
      // The variant's first read races the original's void: it still sees no row.
      if (row === undefined || staleReads-- > 0) throw new WalletError('ACCOUNT_NOT_FOUND', true, 5, 'no row');
      return row;
    },
    async void(request: { error_code: string; fingerprint?: string; refusal?: boolean }) {
      calls.push('Void');
      if (row !== undefined) return { outcome: 'already_voided' };
      t.equal(request.refusal, true, 'a refusal: names its content without claiming the key');
      row = {
        status: 'voided',
        kind: 'bet',
        tx_id: 't-1',
        error_code: request.error_code,
        fingerprint: '',
        refused_fingerprint: request.fingerprint ?? '',
      };
      return { outcome: 'tombstoned' };
    },
    async money() {
      calls.push('Bet');
      return { balance: '90.00', currency: 'USD', tx_id: 't-1' };
    },
  };
  const processor = processorOver(wallet, store, voids);
  const ctx = { requestId: 'r', log: quietLogger() };

  const original = await processor.money('bet', body('10.00'), ctx);
  t.equal(original.status, 503, 'the original is refused');
  t.same(calls.splice(0), ['GetTransaction', 'Void']);

  staleReads = 1;
  const variant = await processor.money('bet', body('11.00'), ctx);
  t.equal(variant.status, 409, 'the variant is refused as other content: the tombstone names the first');
  t.equal(variant.code, 'IDEMPOTENCY_MISMATCH');
  t.same(calls.splice(0), ['GetTransaction', 'Void', 'GetTransaction'], 'it reads the row again, never bets');
  const copy = await processor.money('bet', body('10.00'), ctx);
  t.equal(copy.status, 503, 'a copy of the original meets the same refusal');
  t.notOk(calls.includes('Bet'), 'no request was sent as a bet: the key belongs to no content yet');

  // The ledger cannot be read: still a refusal (503, as the copies refused elsewhere), voided without a
  // fingerprint so its tombstone claims no content either.
  ledgerDown = true;
  const blind = await processor.money('bet', { ...body('12.00'), tx_id: 't-2' }, ctx);
  t.equal(blind.status, 503);
  t.match(blind.body, /WALLET_UNAVAILABLE/);
  t.same(queued, [{ error_code: 'WALLET_UNAVAILABLE', fingerprint: '' }]);
});

t.test("answers given without the store are written late; a decided one replaces a variant's error", async (t) => {
  // Soak (seed 114): a variant took the key with its 503 while the owner's 200, given without Redis,
  // waited to be written; every later copy of the owner was refused as other content.
  const store = new SlowBeginStore({ ttlSeconds: 60 });
  const lateAnswers = new LateAnswerWriter({ store, retryMs: 10 });
  const voids = new VoidQueue({ send: async () => new Promise(() => {}) });
  let walletUp = true;
  const wallet = {
    async money(_method: string, request: MoneyRequest) {
      if (!walletUp) throw new WalletError('WALLET_UNAVAILABLE', false, 14, 'down');
      return { balance: '90.00', currency: 'USD', tx_id: request.tx_id };
    },
    async call() {
      // recordVoidOutcome reads the row: claimed by other content, it must not be written.
      return { status: 'voided', kind: 'bet', tx_id: 't-2', error_code: 'WALLET_TIMEOUT', fingerprint: 'someone-else' };
    },
  };
  t.teardown(async () => {
    await lateAnswers.close(0);
    await voids.close(0);
    await store.close();
  });
  const processor = processorOver(wallet, store, voids, lateAnswers);
  const ctx = { requestId: 'r', log: quietLogger() };
  const variantError = { status: 503, body: '{"error":"wallet unavailable","code":"WALLET_UNAVAILABLE"}' };
  t.equal(await store.storeLate('bet:t-1', undefined, 'a-variant', variantError), 'stored');

  const owner = await processor.money('bet', body('10.00'), ctx);
  t.equal(owner.status, 200);
  await lateAnswers.flush();
  t.equal((await store.peek('bet:t-1'))?.answer.status, 200, "the owner's 200 replaced the variant's 503");
  const ownerPrint = (await store.peek('bet:t-1'))?.fingerprint ?? '';
  t.not(ownerPrint, 'a-variant');
  // That 200 may have replayed a row applied late by an attempt answered with an error: the row's voided
  // outcome, once its void lands, replaces it.
  const voided = { status: 504, body: '{"error":"wallet timeout","code":"WALLET_TIMEOUT"}' };
  t.equal(await store.storeLate('bet:t-1', undefined, ownerPrint, voided, { correct: true, final: true }), 'stored');

  walletUp = false;
  const refused = await processor.money('bet', { ...body('10.00'), tx_id: 't-2' }, ctx);
  t.equal(refused.status, 503);
  await lateAnswers.flush();
  const stored = await store.peek('bet:t-2');
  t.equal(stored?.answer.status, 503, 'an error given without the store is written late too');
  const job = voids.pendingFor('bet', 't-2');
  if (job === undefined) return t.fail('no void queued');
  await processor.recordVoidOutcome(job, 'already_voided');
  await lateAnswers.flush();
  t.same(await store.peek('bet:t-2'), stored, "a row claimed by other content is not this request's outcome");
});

t.test('a copy that was waiting for another copy when the store failed is answered REQUEST_IN_PROGRESS', async (t) => {
  // Soak (seed 117, 600 s): the copy waited on the key, Redis failed, the copy went to the wallet with
  // its deadline gone and answered 504, while the copy holding the key applied the bet (its gateway
  // was killed before it answered): an error answer for an applied bet.
  class FailsWhileWaiting extends InProcessIdempotencyStore {
    override async begin(): Promise<{ kind: 'bypass'; reason: string; waitedForCopy: boolean }> {
      return { kind: 'bypass', reason: 'Connection is closed.', waitedForCopy: true };
    }
  }
  const store = new FailsWhileWaiting({ ttlSeconds: 60 });
  const voids = new VoidQueue({ send: async () => undefined });
  const wallet = fakeWallet();
  t.teardown(() => store.close());
  const processor = processorOver(wallet, store, voids);
  const answer = await processor.money('bet', body('10.00'), { requestId: 'r', log: quietLogger() });
  t.equal(answer.status, 409);
  t.equal(answer.code, 'REQUEST_IN_PROGRESS');
  t.equal(wallet.calls, 0, 'never sent to the wallet');
  t.equal(voids.pendingFor('bet', 't-1'), undefined, 'nothing to void: this copy did nothing');
});
