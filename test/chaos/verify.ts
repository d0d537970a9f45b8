/**
 * The verdict, from the answers only (contract rule 5): a 200 moved money as the contract says, a
 * non-200 moved none, a request without an answer is settled by replaying it (the replay's answer is
 * the truth and must then hold). Then the books: every balance equals the model and the sum of its
 * entries, no error answer was applied, nothing is negative.
 */
import { formatAmount, parseAmount, parseBalance } from '@phia/proto';
import { setTimeout as sleep } from 'node:timers/promises';
import { WalletCallError } from '../helpers/wallet-client.js';
import type { Rng } from './random.js';
import type { ChaosStack } from './stack.js';
import { isRealAnswer, type Attempt, type MoneyOp, type Player, type Workload } from './workload.js';

export class Verdict {
  passed = 0;
  failed = 0;
  readonly byCheck = new Map<string, { passed: number; failed: number }>();
  readonly failures: string[] = [];
  /** Figures for the report that are not checks. */
  readonly notes: string[] = [];
  /** Answer disagreements by what kind they are (see classify). */
  readonly classes = new Map<string, number>();

  classify(name: string): void {
    this.classes.set(name, (this.classes.get(name) ?? 0) + 1);
  }

  check(name: string, ok: boolean, detail: () => string): boolean {
    const entry = this.byCheck.get(name) ?? { passed: 0, failed: 0 };
    this.byCheck.set(name, entry);
    if (ok) {
      this.passed++;
      entry.passed++;
    } else {
      this.failed++;
      entry.failed++;
      // Enough of each kind to diagnose, without drowning the report in one kind.
      if (entry.failed <= 8) this.failures.push(`${name}: ${detail()}`);
    }
    return ok;
  }
}

function same(a: { status: number | undefined; body: string }, b: { status: number | undefined; body: string }) {
  return a.status === b.status && a.body === b.body;
}

/** performance.now() when the load started: failure details give times relative to it. */
let origin = 0;
export function setTimeOrigin(at: number): void {
  origin = at;
}

function show(attempt: {
  status: number | undefined;
  body: string;
  role?: string;
  gateway?: number;
  sentAt?: number;
  ms?: number;
}): string {
  const when =
    attempt.sentAt === undefined ? '' : ` t=${((attempt.sentAt - origin) / 1000).toFixed(2)}s+${attempt.ms}ms`;
  return `${attempt.role ?? ''}@gw${attempt.gateway ?? '?'}${when} ${attempt.status ?? 'none'} ${attempt.body}`;
}

const UNDECIDED = new Set([500, 503, 504]);

/**
 * What kind of disagreement a duplicate's answer is, for the report:
 *   A: the first answer was an undecided error (500/503/504, voided by the gateway) and a later copy
 *      got another answer: it reached the wallet before the void did (idempotency store unavailable
 *      or without the answer).
 *   B: the first answer was final (200 or a ledger decline) and a later copy got an undecided error:
 *      the store had no answer and the wallet could not answer in time; the gateway then voids the
 *      request, which undoes the FIRST copy when that one was applied.
 */
function classify(first: { status: number | undefined }, later: { status: number | undefined }): string {
  const firstUndecided = first.status !== undefined && UNDECIDED.has(first.status);
  const laterUndecided = later.status !== undefined && UNDECIDED.has(later.status);
  if (firstUndecided && !laterUndecided) return `A: first ${first.status}, later ${later.status}`;
  if (!firstUndecided && laterUndecided) return `B: first ${first.status}, later ${later.status}`;
  return `other: first ${first.status}, later ${later.status}`;
}

/** A fault's span in performance.now() ms, from its injection to a grace period after it healed. */
export interface FaultWindow {
  from: number;
  to: number;
}

/** Healing (a restart, Redis reconnecting, the void queue catching up) takes a few seconds more. */
export const FAULT_GRACE_MS = 3000;

function duringFault(attempt: Attempt, windows: readonly FaultWindow[]): boolean {
  return windows.some((window) => attempt.sentAt <= window.to && attempt.at >= window.from);
}

async function pool<T>(items: readonly T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

/** Duplicates agree, then every op is replayed once more after healing; the replay settles the unanswered. */
export async function settleAnswers(
  workload: Workload,
  rng: Rng,
  verdict: Verdict,
  faultWindows: readonly FaultWindow[] = [],
): Promise<{ replays: number }> {
  for (const op of workload.ops) {
    const real = op.attempts.filter(isRealAnswer).sort((a, b) => a.at - b.at);
    const first = real[0];
    if (first !== undefined) op.truth = { status: first.status as number, body: first.body };
    if (real.length > 1) {
      const differing = real.filter((attempt) => !same(attempt, real[0] as Attempt));
      for (const attempt of differing) verdict.classify(classify(real[0] as Attempt, attempt));
      verdict.check(
        'every duplicate got the same answer as its original',
        differing.length === 0,
        () => `${op.kind} ${op.txId}: ${real.map(show).join(' | ')}`,
      );
    }
  }

  let replays = 0;
  await pool(workload.ops, 24, async (op) => {
    let attempt: Attempt | undefined;
    for (let tries = 0; tries < 40; tries++) {
      attempt = await workload.sendOp(rng, op, 'replay');
      replays++;
      if (isRealAnswer(attempt)) break;
      await sleep(300);
    }
    if (attempt === undefined || !isRealAnswer(attempt)) {
      verdict.check('every request settles with an answer after healing', false, () => `${op.kind} ${op.txId}`);
      return;
    }
    if (op.truth === undefined) {
      op.truth = { status: attempt.status as number, body: attempt.body };
      verdict.check('every request settles with an answer after healing', true, () => '');
    } else {
      const truth = op.truth;
      if (!same(attempt, truth)) verdict.classify(`replay ${classify(truth, attempt)}`);
      verdict.check(
        'a replay after healing gets the first answer',
        same(attempt, truth),
        () => `${op.kind} ${op.txId}: first ${truth.status} ${truth.body} | replay ${show(attempt as Attempt)}`,
      );
    }
  });

  for (const op of workload.ops) {
    for (const variant of op.variants.filter(isRealAnswer)) {
      // Without the idempotency store and the ledger both, the gateway cannot tell a variant from the
      // key's owner (the owner's answer may sit in the other gateway's memory): it refuses it 503/504,
      // which moves no money (the books check that) and is allowed only while a fault was on.
      const refusedBlind = (variant.status === 503 || variant.status === 504) && duringFault(variant, faultWindows);
      verdict.check(
        'same tx_id with other content is refused (IDEMPOTENCY_MISMATCH, or 503/504 during a fault)',
        (variant.status === 409 && variant.code === 'IDEMPOTENCY_MISMATCH') || refusedBlind,
        () => `${op.kind} ${op.txId}: original ${op.truth?.status} ${op.truth?.body} | variant ${show(variant)}`,
      );
    }
  }
  return { replays };
}

function formatSigned(units: bigint, decimals: number): string {
  return units < 0n ? `-${formatAmount(-units, decimals)}` : formatAmount(units, decimals);
}

/** What the op did to its player's balance, by the contract, judging by the answers only. */
export function modelEffect(op: MoneyOp): bigint {
  if (op.truth?.status !== 200) return 0n;
  switch (op.kind) {
    case 'bet':
      return -op.amount;
    case 'win':
      return op.amount;
    case 'refund':
      // A refund reverses an applied bet; a refund for a bet never applied is a tombstone (moves nothing).
      return op.bet?.truth?.status === 200 ? op.amount : 0n;
  }
}

interface LedgerRow {
  kind: string;
  tx_id: string;
  status: string;
  amount: string | null;
  error_code: string | null;
}

export async function checkBooks(
  stack: ChaosStack,
  workload: Workload,
  players: readonly Player[],
  verdict: Verdict,
): Promise<void> {
  const schema = stack.schema;

  // The model: each player's initial deposit plus the effect of every answered request.
  const expected = new Map<string, bigint>(players.map((player) => [player.userId, player.initial]));
  for (const op of workload.ops) {
    expected.set(op.player.userId, (expected.get(op.player.userId) ?? 0n) + modelEffect(op));
  }

  const accounts = await stack.pool.query<{ user_id: string; currency: string; balance: string; entries: string }>(
    `SELECT a.user_id, a.currency, a.balance::text,
            coalesce((SELECT sum(e.amount) FROM ${schema}.entries e WHERE e.account_id = a.id), 0)::text AS entries
     FROM ${schema}.accounts a WHERE a.owner_kind = 'player'`,
  );
  const byUser = new Map(accounts.rows.map((row) => [row.user_id, row]));
  const admin = stack.admin();
  try {
    for (const player of players) {
      const row = byUser.get(player.userId);
      const want = expected.get(player.userId) ?? 0n;
      if (!verdict.check('every account exists', row !== undefined, () => player.userId)) continue;
      const balance = parseBalance(row!.balance, player.decimals);
      const entries = parseBalance(row!.entries, player.decimals);
      verdict.check(
        'every balance equals the model',
        balance === want,
        () =>
          `${player.userId}: ledger ${row!.balance}, model ${formatAmount(want, player.decimals)} (ledger - model = ${formatSigned(balance - want, player.decimals)})`,
      );
      verdict.check(
        'every balance equals the sum of its ledger entries',
        balance === entries,
        () => `${player.userId}: balance ${row!.balance}, entries ${row!.entries}`,
      );
      verdict.check('no balance is negative', balance >= 0n, () => `${player.userId}: ${row!.balance}`);
      const reply = await admin.GetBalance({ user_id: player.userId, currency: player.currency });
      verdict.check(
        'the wallet answers the ledger balance (GetBalance)',
        parseBalance(reply.balance ?? '', player.decimals) === balance,
        () => `${player.userId}: GetBalance ${reply.balance}, ledger ${row!.balance}`,
      );
    }

    const unbalanced = await stack.pool.query<{ currency: string; sum: string }>(
      `SELECT a.currency, sum(e.amount)::text AS sum FROM ${schema}.entries e JOIN ${schema}.accounts a ON a.id = e.account_id
       GROUP BY a.currency`,
    );
    for (const row of unbalanced.rows) {
      verdict.check(
        'the entries of each currency sum to zero (double entry)',
        Number(row.sum) === 0,
        () => `${row.currency}: ${row.sum}`,
      );
    }

    // How the voids ended: a voided row with entries had been applied and was reversed (a commit the
    // gateway did not see in time, or a copy that applied while a void was pending).
    const voids = await stack.pool.query<{ reversed: string; prevented: string }>(
      `SELECT count(*) FILTER (WHERE EXISTS (SELECT 1 FROM ${schema}.entries e WHERE e.transaction_id = t.id))::text AS reversed,
              count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM ${schema}.entries e WHERE e.transaction_id = t.id))::text AS prevented
       FROM ${schema}.transactions t WHERE t.status = 'voided'`,
    );
    const v = voids.rows[0];
    if (v) verdict.notes.push(`voided requests: ${v.prevented} never applied, ${v.reversed} applied then reversed`);

    // The stored outcome agrees with the answer: a 200 is applied with its amount, an error never is.
    const rows = await stack.pool.query<LedgerRow>(
      `SELECT kind, tx_id, status, amount::text, error_code FROM ${schema}.transactions`,
    );
    const stored = new Map(rows.rows.map((row) => [`${row.kind}:${row.tx_id}`, row]));
    const errorBets: MoneyOp[] = [];
    for (const op of workload.ops) {
      if (op.truth === undefined) continue;
      const row = stored.get(`${op.kind}:${op.txId}`);
      if (op.truth.status === 200) {
        verdict.check(
          'a 200 answer is applied in the ledger, with its amount',
          row?.status === 'applied' && parseAmount(row.amount ?? '', op.player.decimals) === op.amount,
          () => `${op.kind} ${op.txId}: answered ${op.truth?.body}, ledger ${JSON.stringify(row ?? null)}`,
        );
      } else {
        verdict.check(
          'an error answer is never applied in the ledger',
          row?.status !== 'applied',
          () => `${op.kind} ${op.txId}: answered ${op.truth?.status} ${op.truth?.body}, ledger ${JSON.stringify(row)}`,
        );
        if (op.kind === 'bet') errorBets.push(op);
      }
    }

    // And as the wallet itself reports it.
    await pool(errorBets, 16, async (op) => {
      let status = 'absent';
      try {
        status = (await admin.GetTransaction({ kind: 'bet', tx_id: op.txId })).status ?? '';
      } catch (error) {
        if (!(error instanceof WalletCallError && error.code === 'ACCOUNT_NOT_FOUND'))
          status = `error ${String(error)}`;
      }
      verdict.check(
        'no bet answered with an error is applied (GetTransaction)',
        ['absent', 'declined', 'voided', 'tombstone'].includes(status),
        () => `bet ${op.txId}: answered ${op.truth?.status} ${op.truth?.body}, GetTransaction ${status}`,
      );
    });

    for (const bad of workload.badSignatures) {
      if (bad.reply.status !== undefined) {
        verdict.check(
          'a bad signature is refused with 401 INVALID_SIGNATURE',
          bad.reply.status === 401 && bad.reply.body.includes('INVALID_SIGNATURE'),
          () => `${bad.txId}: ${bad.reply.status} ${bad.reply.body}`,
        );
      }
      verdict.check('a badly signed request never reaches the ledger', !stored.has(`bet:${bad.txId}`), () => bad.txId);
    }

    for (const text of workload.stats.negativeBalanceAnswers) {
      verdict.check('no answer carries a negative or unreadable balance', false, () => text);
    }
  } finally {
    admin.close();
  }
}
