/**
 * Property-based test of the wallet's rules (fast-check, with shrinking) against the real
 * PostgreSQL: random sequences of deposits, bets, wins, refunds (by bet, partial, before the bet),
 * duplicates and voids; every answer must match a small model, and the books must balance.
 */
import fc from 'fast-check';
import t from 'tap';
import { formatAmount } from '@phia/proto';
import { openTestLedger, outcomeCode } from '../test-helpers/ledger.js';

const { ledger, close } = await openTestLedger('property');
t.teardown(close);

type Op =
  | { type: 'deposit'; cents: number }
  | { type: 'bet'; cents: number }
  | { type: 'win'; cents: number; bet: number }
  | { type: 'refund'; bet: number; cents: number }
  | { type: 'refundUnseen' }
  | { type: 'betAfterRefund' }
  | { type: 'duplicateBet'; bet: number }
  | { type: 'void'; bet: number };

const cents = fc.integer({ min: 0, max: 5000 });
const index = fc.nat({ max: 20 });
const opArbitrary: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ type: fc.constant('deposit' as const), cents }),
  fc.record({ type: fc.constant('bet' as const), cents }),
  fc.record({ type: fc.constant('win' as const), cents, bet: index }),
  fc.record({ type: fc.constant('refund' as const), bet: index, cents }),
  fc.record({ type: fc.constant('refundUnseen' as const) }),
  fc.record({ type: fc.constant('betAfterRefund' as const) }),
  fc.record({ type: fc.constant('duplicateBet' as const), bet: index }),
  fc.record({ type: fc.constant('void' as const), bet: index }),
);

interface ModelBet {
  tx_id: string;
  cents: number;
  refunded: number;
  status: 'applied' | 'declined' | 'voided';
  code: string;
}

let run = 0;

t.test('wallet answers and balances follow the model for any sequence of operations', async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.array(opArbitrary, { minLength: 1, maxLength: 25 }), async (ops) => {
      const user = `prop-${++run}`;
      let seq = 0;
      const tx = (kind: string) => `${user}-${kind}-${++seq}`;
      const money = (value: number) => formatAmount(BigInt(value), 2);
      const base = { user_id: user, currency: 'USD', round_id: 'r', game_session_id: 'g' };
      await ledger.deposit({ tx_id: tx('dep'), user_id: user, currency: 'USD', amount: '20.00' });
      let balance = 2000;
      const bets: ModelBet[] = [];
      const tombstoned: string[] = [];
      const pick = (i: number) => (bets.length === 0 ? undefined : bets[i % bets.length]);

      for (const op of ops) {
        switch (op.type) {
          case 'deposit': {
            await ledger.deposit({ tx_id: tx('dep'), user_id: user, currency: 'USD', amount: money(op.cents) });
            balance += op.cents;
            break;
          }
          case 'bet': {
            const bet: ModelBet = { tx_id: tx('bet'), cents: op.cents, refunded: 0, status: 'applied', code: 'OK' };
            if (op.cents > balance) Object.assign(bet, { status: 'declined', code: 'INSUFFICIENT_FUNDS' });
            else balance -= op.cents;
            const code = await outcomeCode(ledger.bet({ ...base, tx_id: bet.tx_id, amount: money(op.cents) }));
            if (code !== bet.code) throw new Error(`bet: expected ${bet.code}, got ${code}`);
            bets.push(bet);
            break;
          }
          case 'win': {
            const bet = pick(op.bet);
            // A refund's mark comes first, then whether the bet applied (contract rule 9).
            let expected = 'OK';
            if (bet !== undefined && bet.refunded > 0) expected = 'BET_REFUNDED';
            else if (bet !== undefined && bet.status !== 'applied') expected = 'BET_NOT_APPLIED';
            const code = await outcomeCode(
              ledger.win({ ...base, tx_id: tx('win'), amount: money(op.cents), bet_tx_id: bet?.tx_id ?? '' }),
            );
            if (code !== expected) throw new Error(`win: expected ${expected}, got ${code}`);
            if (expected === 'OK') balance += op.cents;
            break;
          }
          case 'refund': {
            const bet = pick(op.bet);
            if (!bet) break;
            const left = bet.cents - bet.refunded;
            const amount = Math.min(op.cents, bet.cents + 1); // sometimes one cent too much
            let expected = 'OK';
            if (bet.status === 'applied') {
              if (amount > left) expected = 'REFUND_EXCEEDS_BET';
              else {
                bet.refunded += amount;
                balance += amount;
              }
            }
            const code = await outcomeCode(
              ledger.refund({ ...base, tx_id: tx('refund'), amount: money(amount), bet_tx_id: bet.tx_id }),
            );
            if (code !== expected) throw new Error(`refund: expected ${expected}, got ${code}`);
            break;
          }
          case 'refundUnseen': {
            const betTx = tx('unseen');
            const answer = await ledger.refund({ ...base, tx_id: tx('refund'), amount: '1.00', bet_tx_id: betTx });
            if (answer.balance !== money(balance)) throw new Error('refund of an unseen bet changed the balance');
            tombstoned.push(betTx);
            break;
          }
          case 'betAfterRefund': {
            const betTx = tombstoned.shift();
            if (betTx === undefined) break;
            const code = await outcomeCode(ledger.bet({ ...base, tx_id: betTx, amount: '0.01' }));
            if (code !== 'BET_REFUNDED') throw new Error(`bet after refund: got ${code}`);
            break;
          }
          case 'duplicateBet': {
            const bet = pick(op.bet);
            if (!bet) break;
            const code = await outcomeCode(ledger.bet({ ...base, tx_id: bet.tx_id, amount: money(bet.cents) }));
            if (code !== bet.code) throw new Error(`duplicate: expected ${bet.code}, got ${code}`);
            break;
          }
          case 'void': {
            const bet = pick(op.bet);
            if (!bet) break;
            if (bet.status === 'applied') {
              balance += bet.cents - bet.refunded;
              Object.assign(bet, { status: 'voided', code: 'WALLET_TIMEOUT' });
            }
            await ledger.voidTransaction({ kind: 'bet', tx_id: bet.tx_id, error_code: 'WALLET_TIMEOUT' });
            break;
          }
        }
        const actual = (await ledger.getBalance({ user_id: user, currency: 'USD' })).balance;
        if (actual !== money(balance)) throw new Error(`after ${op.type}: balance ${actual}, model ${money(balance)}`);
      }
    }),
    {
      numRuns: Number(process.env.PROPERTY_RUNS ?? 40),
      seed: process.env.PROPERTY_SEED ? Number(process.env.PROPERTY_SEED) : undefined,
    },
  );
  t.same(await ledger.checkBooks(), { unbalancedCurrencies: [], driftedAccounts: [], negativeAccounts: [] });
});
