/**
 * The traffic PHIA would send, with its worst habits: bets, wins and refunds (also refunds before
 * their bet, refunds by round, and races of a refund with its bet), balances, exact duplicates (some
 * concurrent with the original, some late), the same tx_id with other content, and bad signatures.
 * Every send and every answer is recorded; the verdict is the verifier's.
 */
import { formatAmount } from '@phia/proto';
import { setTimeout as sleep } from 'node:timers/promises';
import { codeOf, post, sign, type Reply } from './phia-client.js';
import type { Rng } from './random.js';
import type { ChaosStack } from './stack.js';

export type MoneyKind = 'bet' | 'win' | 'refund';
export type Role = 'original' | 'dup-concurrent' | 'dup-late' | 'replay';

export interface Player {
  userId: string;
  currency: string;
  decimals: number;
  sessionId: string;
  gameSessionId: string;
  /** What the deposit put in, in units. */
  initial: bigint;
}

export interface Attempt {
  role: Role | 'variant';
  gateway: number;
  status: number | undefined;
  body: string;
  code: string;
  error?: string;
  ms: number;
  /** performance.now() when the answer (or its absence) was known. */
  at: number;
  /** performance.now() when it was sent. */
  sentAt: number;
}

/** One (kind, tx_id) with its content, and every send of it. */
export interface MoneyOp {
  kind: MoneyKind;
  txId: string;
  player: Player;
  roundId: string;
  amount: bigint;
  /** The bet this win or refund is about (by bet_tx_id, or the round's only bet when byRound). */
  bet?: MoneyOp;
  byRound: boolean;
  fields: Record<string, string>;
  /** Sent as a JSON number instead of a string. */
  amountAsNumber: boolean;
  attempts: Attempt[];
  /** Same kind and tx_id, other content: each must be refused (IDEMPOTENCY_MISMATCH; 503/504 only during a fault). */
  variants: Attempt[];
  /** Resolved by the verifier: the first real answer, or the replay's. */
  truth?: { status: number; body: string };
}

export interface BadSignature {
  txId: string;
  reply: Reply;
}

export interface Stats {
  requests: number;
  byAction: Record<string, number>;
  byRole: Record<string, number>;
  byStatus: Record<string, number>;
  byCode: Record<string, number>;
  noAnswer: number;
  refusedRerouted: number;
  inProgress: number;
  balanceRequests: number;
  slowOver6s: number;
  /** The first answers over 6 s, for the report. */
  slow: string[];
  maxMs: number;
  negativeBalanceAnswers: string[];
}

export function newStats(): Stats {
  return {
    requests: 0,
    byAction: {},
    byRole: {},
    byStatus: {},
    byCode: {},
    noAnswer: 0,
    refusedRerouted: 0,
    inProgress: 0,
    balanceRequests: 0,
    slowOver6s: 0,
    slow: [],
    maxMs: 0,
    negativeBalanceAnswers: [],
  };
}

function bump(map: Record<string, number>, key: string): void {
  map[key] = (map[key] ?? 0) + 1;
}

export interface WorkloadOptions {
  /** No answer within this: counted as no answer (PHIA itself gives up at 6 s). */
  requestTimeoutMs: number;
  maxRequests: number;
  duplicateConcurrentP: number;
  duplicateLateP: number;
  variantP: number;
}

export const DEFAULT_WORKLOAD: WorkloadOptions = {
  requestTimeoutMs: 8000,
  maxRequests: 1_000_000,
  duplicateConcurrentP: 0.12,
  duplicateLateP: 0.1,
  variantP: 0.04,
};

const SCENARIOS = {
  round: 50,
  refundFirst: 8,
  race: 7,
  balance: 10,
  badSignature: 4,
} as const;

export class Workload {
  readonly ops: MoneyOp[] = [];
  readonly badSignatures: BadSignature[] = [];
  readonly stats = newStats();
  readonly #stack: ChaosStack;
  readonly #players: Player[];
  readonly #options: WorkloadOptions;
  readonly #late = new Set<Promise<void>>();
  #counter = 0;
  #acceptLate = true;

  constructor(stack: ChaosStack, players: Player[], options: WorkloadOptions) {
    this.#stack = stack;
    this.#players = players;
    this.#options = options;
  }

  get budgetLeft(): boolean {
    return this.stats.requests < this.#options.maxRequests;
  }

  /** One worker: scenarios back to back until `until` (performance.now()) or the request budget. */
  async worker(rng: Rng, until: number): Promise<void> {
    while (performance.now() < until && this.budgetLeft) {
      const player = rng.pick(this.#players);
      const scenario = rng.weighted(SCENARIOS);
      await this[scenario](rng, player);
    }
  }

  /** Stops late duplicates not sent yet and waits for the ones in flight. */
  async settle(): Promise<void> {
    this.#acceptLate = false;
    while (this.#late.size > 0) await Promise.all([...this.#late]);
  }

  // ---------------------------------------------------------------------------------------------
  // Scenarios

  /** A bet, then its win, its refund (by bet_tx_id or by round), or nothing. */
  async round(rng: Rng, player: Player): Promise<void> {
    const bet = this.#newOp(rng, 'bet', player, this.#roundId(), this.#betAmount(rng, player));
    await this.#send(rng, bet);
    const next = rng.weighted({ win: 50, refundByBet: 20, refundByRound: 12, none: 18 });
    if (next === 'win') {
      const amount = rng.chance(0.3) ? 0n : rng.units(0n, bet.amount * 2n + 1n);
      await this.#send(rng, this.#newOp(rng, 'win', player, bet.roundId, amount, bet, false));
    } else if (next === 'refundByBet' || next === 'refundByRound') {
      await this.#send(
        rng,
        this.#newOp(rng, 'refund', player, bet.roundId, this.#refundAmount(rng, bet), bet, next === 'refundByRound'),
      );
    }
  }

  /** The refund arrives before its bet: the bet must then be refused (BET_REFUNDED), never applied. */
  async refundFirst(rng: Rng, player: Player): Promise<void> {
    const bet = this.#newOp(rng, 'bet', player, this.#roundId(), this.#betAmount(rng, player));
    const refund = this.#newOp(rng, 'refund', player, bet.roundId, bet.amount, bet, rng.chance(0.4));
    await this.#send(rng, refund);
    await this.#send(rng, bet);
  }

  /** A bet and its refund at the same time: one of them wins the account lock; never both, never neither. */
  async race(rng: Rng, player: Player): Promise<void> {
    const bet = this.#newOp(rng, 'bet', player, this.#roundId(), this.#betAmount(rng, player));
    const refund = this.#newOp(rng, 'refund', player, bet.roundId, bet.amount, bet, rng.chance(0.3));
    await Promise.all([this.#send(rng, bet), this.#send(rng, refund)]);
  }

  async balance(rng: Rng, player: Player): Promise<void> {
    const fields: Record<string, string> = { user_id: player.userId, currency: player.currency };
    if (rng.chance(0.7)) fields.session_id = player.sessionId;
    const single = rng.chance(0.3);
    const body = JSON.stringify(single ? { action: 'balance', ...fields } : fields);
    const reply = await this.#post(rng, single ? '/phia' : '/phia/balance', body, sign(this.#stack.signingKey, body));
    this.stats.balanceRequests++;
    this.#count('balance', 'original', reply.reply);
    if (reply.reply.status === 200) this.#checkBalanceText(reply.reply.body, 'balance');
  }

  /** A bet that must be refused with 401 and never reach the wallet. */
  async badSignature(rng: Rng, player: Player): Promise<void> {
    const op = this.#newOp(rng, 'bet', player, this.#roundId(), this.#betAmount(rng, player));
    this.ops.pop(); // not a real request: checked on its own
    const body = this.#bodyOf(op, false);
    const how = rng.weighted({ otherKey: 1, alteredByte: 1, missing: 1, reserialized: 1 });
    let signature = sign(this.#stack.signingKey, body);
    let sent = body;
    if (how === 'otherKey') signature = sign(`not-${this.#stack.signingKey}`, body);
    if (how === 'alteredByte')
      sent = body.replace(op.txId, `${op.txId.slice(0, -1)}${op.txId.endsWith('x') ? 'y' : 'x'}`);
    if (how === 'missing') signature = '';
    if (how === 'reserialized') sent = JSON.stringify(JSON.parse(body), null, 1);
    const reply = await this.#post(rng, '/phia/bet', sent, signature);
    this.#count('bet', 'bad-signature', reply.reply);
    this.badSignatures.push({ txId: how === 'alteredByte' ? JSON.parse(sent).tx_id : op.txId, reply: reply.reply });
  }

  // ---------------------------------------------------------------------------------------------
  // Sending

  /** Sends the op (and maybe a concurrent duplicate, a late duplicate, a variant) and records every answer. */
  async #send(rng: Rng, op: MoneyOp): Promise<void> {
    const concurrent = rng.chance(this.#options.duplicateConcurrentP);
    const sends: Promise<unknown>[] = [this.sendOp(rng, op, 'original')];
    if (concurrent) sends.push(this.sendOp(rng, op, 'dup-concurrent'));
    await Promise.all(sends);
    if (rng.chance(this.#options.duplicateLateP) && this.#acceptLate) {
      const delay = rng.int(100, 8000);
      const late: Promise<void> = (async () => {
        await sleep(delay);
        if (this.#acceptLate) await this.sendOp(rng, op, 'dup-late');
      })().finally(() => this.#late.delete(late));
      this.#late.add(late);
    }
    if (rng.chance(this.#options.variantP) && op.attempts.some((attempt) => isRealAnswer(attempt))) {
      await this.#sendVariant(rng, op);
    }
  }

  /** One send of the op's exact content (either endpoint style: the content is the same request). */
  async sendOp(rng: Rng, op: MoneyOp, role: Role): Promise<Attempt> {
    const single = rng.chance(0.3);
    const body = this.#bodyOf(op, single);
    const { reply, gateway } = await this.#post(
      rng,
      single ? '/phia' : `/phia/${op.kind}`,
      body,
      sign(this.#stack.signingKey, body),
    );
    const attempt = toAttempt(role, gateway, reply);
    op.attempts.push(attempt);
    this.#count(op.kind, role, reply);
    if (reply.status === 200) this.#checkBalanceText(reply.body, `${op.kind} ${op.txId}`);
    return attempt;
  }

  async #sendVariant(rng: Rng, op: MoneyOp): Promise<void> {
    const other: MoneyOp = { ...op, amount: op.amount + 1n, amountAsNumber: false };
    other.fields = { ...op.fields, amount: formatAmount(other.amount, op.player.decimals) };
    const body = this.#bodyOf(other, false);
    const { reply, gateway } = await this.#post(rng, `/phia/${op.kind}`, body, sign(this.#stack.signingKey, body));
    op.variants.push(toAttempt('variant', gateway, reply));
    this.#count(op.kind, 'variant', reply);
  }

  /** POSTs to a gateway that is up; a refused connection never reached it, so it goes to the other one. */
  async #post(rng: Rng, path: string, body: string, signature: string): Promise<{ reply: Reply; gateway: number }> {
    const up = this.#stack.gatewayUp.map((isUp, index) => (isUp ? index : -1)).filter((index) => index >= 0);
    let gateway = up.length > 0 ? rng.pick(up) : rng.int(0, this.#stack.gatewayPorts.length - 1);
    let reply = await post(
      `${this.#stack.gatewayUrl(gateway)}${path}`,
      body,
      signature,
      this.#options.requestTimeoutMs,
    );
    if (reply.refused && this.#stack.gatewayPorts.length > 1) {
      this.stats.refusedRerouted++;
      gateway = (gateway + 1) % this.#stack.gatewayPorts.length;
      reply = await post(`${this.#stack.gatewayUrl(gateway)}${path}`, body, signature, this.#options.requestTimeoutMs);
    }
    this.stats.requests++;
    return { reply, gateway };
  }

  #count(action: string, role: string, reply: Reply): void {
    bump(this.stats.byAction, action);
    bump(this.stats.byRole, role);
    if (reply.status === undefined) {
      this.stats.noAnswer++;
      bump(this.stats.byStatus, 'none');
    } else {
      bump(this.stats.byStatus, String(reply.status));
      const code = codeOf(reply);
      bump(this.stats.byCode, code === '' ? (reply.status === 200 ? 'ok' : `http-${reply.status}`) : code);
      if (code === 'REQUEST_IN_PROGRESS') this.stats.inProgress++;
    }
    if (reply.ms > 6000 && this.stats.slowOver6s++ < 8) {
      this.stats.slow.push(`${action} ${role} ${reply.status ?? 'none'} ${codeOf(reply)} ${Math.round(reply.ms)} ms`);
    }
    this.stats.maxMs = Math.max(this.stats.maxMs, reply.ms);
  }

  #checkBalanceText(body: string, what: string): void {
    try {
      const balance = (JSON.parse(body) as { balance?: unknown }).balance;
      if (typeof balance !== 'string' || balance.startsWith('-'))
        this.stats.negativeBalanceAnswers.push(`${what}: ${body}`);
    } catch {
      this.stats.negativeBalanceAnswers.push(`${what}: unreadable ${body}`);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Building requests

  #newOp(
    rng: Rng,
    kind: MoneyKind,
    player: Player,
    roundId: string,
    amount: bigint,
    bet?: MoneyOp,
    byRound = false,
  ): MoneyOp {
    const txId = `${this.#stack.runId}-${kind[0]}${++this.#counter}`;
    const fields: Record<string, string> = {
      user_id: player.userId,
      currency: player.currency,
      game_id: 'crash',
      game_session_id: player.gameSessionId,
      round_id: roundId,
      tx_id: txId,
      amount: formatAmount(amount, player.decimals),
    };
    if (kind === 'bet' && rng.chance(0.85)) fields.session_id = player.sessionId;
    if (bet !== undefined && !byRound) fields.bet_tx_id = bet.txId;
    const op: MoneyOp = {
      kind,
      txId,
      player,
      roundId,
      amount,
      byRound,
      fields,
      amountAsNumber: rng.chance(0.2),
      attempts: [],
      variants: [],
      ...(bet === undefined ? {} : { bet }),
    };
    this.ops.push(op);
    return op;
  }

  #bodyOf(op: MoneyOp, single: boolean): string {
    const text = JSON.stringify(single ? { action: op.kind, ...op.fields } : op.fields);
    // A JSON number amount, written exactly as the decimal text (never through a float).
    return op.amountAsNumber ? text.replace(`"amount":"${op.fields.amount}"`, `"amount":${op.fields.amount}`) : text;
  }

  #roundId(): string {
    return `${this.#stack.runId}-r${++this.#counter}`;
  }

  /** Up to about a tenth of the initial balance, so some bets meet an empty account (402). */
  #betAmount(rng: Rng, player: Player): bigint {
    if (rng.chance(0.03)) return 0n;
    return rng.units(1n, player.initial / 8n);
  }

  /** Usually all of the bet, sometimes part of it, sometimes more than it (REFUND_EXCEEDS_BET). */
  #refundAmount(rng: Rng, bet: MoneyOp): bigint {
    const how = rng.weighted({ full: 70, part: 20, more: 10 });
    if (how === 'part') return bet.amount > 0n ? rng.units(0n, bet.amount) : 0n;
    if (how === 'more') return bet.amount + rng.units(1n, 100n);
    return bet.amount;
  }
}

/** An answer that decides the request: any status except 409 REQUEST_IN_PROGRESS (the first is still running). */
export function isRealAnswer(attempt: { status: number | undefined; code: string }): boolean {
  return attempt.status !== undefined && attempt.code !== 'REQUEST_IN_PROGRESS';
}

function toAttempt(role: Attempt['role'], gateway: number, reply: Reply): Attempt {
  return {
    role,
    gateway,
    status: reply.status,
    body: reply.body,
    code: codeOf(reply),
    ...(reply.error === undefined ? {} : { error: reply.error }),
    ms: Math.round(reply.ms),
    at: performance.now(),
    sentAt: performance.now() - reply.ms,
  };
}
