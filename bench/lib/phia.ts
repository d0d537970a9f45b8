/**
 * Signed PHIA requests for autocannon: one body per request (unique tx_id and round_id for money
 * requests), `X-REQUEST-SIGN` = lowercase hex HMAC-SHA256 of the exact body bytes sent.
 */
import { createHmac } from 'node:crypto';
import type autocannon from 'autocannon';
import type { OpenLoopRequest } from './open-loop.js';

export interface Player {
  user_id: string;
  session_id: string;
  game_session_id: string;
}

/** A bet answered 200, kept for win, refund and replay. */
export interface AnsweredBet {
  player: Player;
  tx_id: string;
  round_id: string;
  amount: string;
  /** The exact body and signature sent, for replays. */
  body: string;
  sign: string;
  /** The exact answer body, to check replays byte for byte. */
  answer: string;
}

export const CURRENCY = 'USD';
export const GAME_ID = 'crash';
export const BET_AMOUNT = '1.00';
export const WIN_AMOUNT = '1.50';

export function sign(key: string, body: string): string {
  return createHmac('sha256', key).update(body).digest('hex');
}

export function headers(signature: string): Record<string, string> {
  return { 'content-type': 'application/json', 'x-request-sign': signature };
}

/** What happened to the money requests of one tag (phase): tx_ids by answer, and those never answered. */
export class Outcomes {
  readonly ok: string[] = [];
  readonly failed = new Map<string, number>();
  /** tx_id → the time its request was sent (epoch ms), while unanswered. */
  readonly pending = new Map<string, number>();
  replayedHeader = 0;
  replayMismatches = 0;

  sent(txId: string): void {
    this.pending.set(txId, Date.now());
  }

  /** Its connection closed without an answer (refused by a full gateway): neither answered nor pending. */
  refused(txId: string): void {
    this.pending.delete(txId);
    this.refusedCount++;
  }

  refusedCount = 0;

  answered(txId: string, status: number): void {
    this.pending.delete(txId);
    if (status === 200) this.ok.push(txId);
    else this.failed.set(txId, status);
  }

  /** Oldest age (ms) of a request still unanswered at `now`. */
  maxPendingAgeMs(now = Date.now()): number {
    let max = 0;
    for (const sentAt of this.pending.values()) max = Math.max(max, now - sentAt);
    return max;
  }
}

interface Ctx {
  tx_id?: string;
  bet?: AnsweredBet;
  body?: string;
  sign?: string;
}

export interface RequestFactoryOptions {
  key: string;
  players: Player[];
  /** Prefix of every tx_id and round_id of this phase, unique in the run. */
  tag: string;
  outcomes: Outcomes;
}

/**
 * Balance: precomputed bodies (no tx_id in a balance request), one per player, in turn. With
 * `outcomes`, every request is tracked (as `balance-<n>`) so unanswered ones can be aged.
 */
export function balanceRequests(
  key: string,
  players: Player[],
  path = '/phia/balance',
  outcomes?: Outcomes,
): autocannon.Request[] {
  const prepared = players.map((player) => {
    const body = JSON.stringify({
      user_id: player.user_id,
      currency: CURRENCY,
      session_id: player.session_id,
      game_id: GAME_ID,
    });
    return { body, headers: headers(sign(key, body)) };
  });
  let next = 0;
  return [
    {
      method: 'POST',
      path,
      setupRequest: (request, context) => {
        const i = next++;
        if (outcomes !== undefined) {
          (context as Ctx).tx_id = `balance-${i}`;
          outcomes.sent(`balance-${i}`);
        }
        return { ...request, ...prepared[i % prepared.length] };
      },
      ...(outcomes === undefined
        ? {}
        : {
            onResponse: (status: number, _body: string, context: object) => {
              const ctx = context as Ctx;
              if (ctx.tx_id !== undefined) outcomes.answered(ctx.tx_id, status);
            },
          }),
    },
  ];
}

/** Bets with a unique tx_id and round each; answered ones are appended to `answered`. */
export function betRequests(options: RequestFactoryOptions, answered: AnsweredBet[]): autocannon.Request[] {
  const { key, players, tag, outcomes } = options;
  let n = 0;
  return [
    {
      method: 'POST',
      path: '/phia/bet',
      setupRequest: (request, context) => {
        const i = n++;
        const player = players[i % players.length] as Player;
        const txId = `${tag}-${i}`;
        const roundId = `${tag}-r${i}`;
        const body = JSON.stringify({
          user_id: player.user_id,
          currency: CURRENCY,
          session_id: player.session_id,
          game_id: GAME_ID,
          game_session_id: player.game_session_id,
          round_id: roundId,
          tx_id: txId,
          amount: BET_AMOUNT,
        });
        const signature = sign(key, body);
        const ctx = context as Ctx;
        ctx.tx_id = txId;
        ctx.bet = { player, tx_id: txId, round_id: roundId, amount: BET_AMOUNT, body, sign: signature, answer: '' };
        outcomes.sent(txId);
        return { ...request, body, headers: headers(signature) };
      },
      onResponse: (status, body, context) => {
        const ctx = context as Ctx;
        if (ctx.tx_id === undefined) return;
        outcomes.answered(ctx.tx_id, status);
        if (status === 200 && ctx.bet) answered.push({ ...ctx.bet, answer: body });
      },
    },
  ];
}

/**
 * Wins or refunds of answered bets: each request pays (win) or reverses (refund) one bet of `bets`,
 * by bet_tx_id in the bet's round, taken in order. Refunds take each bet once; when they run out, further refunds
 * name a bet that was never placed (a tombstone, answered 200 with the balance unchanged), counted
 * in `tombstones`.
 */
export function settleRequests(
  kind: 'win' | 'refund',
  options: RequestFactoryOptions,
  bets: AnsweredBet[],
  /** Shared by the warm-up and the measured run: `next` is the next bet to settle. */
  counters: { tombstones: number; next: number },
): autocannon.Request[] {
  const { key, tag, outcomes, players } = options;
  let n = 0;
  return [
    {
      method: 'POST',
      path: `/phia/${kind}`,
      setupRequest: (request, context) => {
        const i = n++;
        const txId = `${tag}-${i}`;
        let fields: Record<string, string>;
        const k = counters.next++;
        const bet = kind === 'win' ? bets[k % bets.length] : bets[k];
        if (bet !== undefined) {
          fields = {
            user_id: bet.player.user_id,
            session_id: bet.player.session_id,
            game_session_id: bet.player.game_session_id,
            round_id: bet.round_id,
            bet_tx_id: bet.tx_id,
            amount: kind === 'win' ? WIN_AMOUNT : bet.amount,
          };
        } else {
          counters.tombstones++;
          const player = players[i % players.length] as Player;
          fields = {
            user_id: player.user_id,
            session_id: player.session_id,
            game_session_id: player.game_session_id,
            round_id: `${tag}-never-r${i}`,
            bet_tx_id: `${tag}-never-${i}`,
            amount: BET_AMOUNT,
          };
        }
        const body = JSON.stringify({
          user_id: fields.user_id,
          currency: CURRENCY,
          session_id: fields.session_id,
          game_id: GAME_ID,
          game_session_id: fields.game_session_id,
          round_id: fields.round_id,
          tx_id: txId,
          bet_tx_id: fields.bet_tx_id,
          amount: fields.amount,
        });
        (context as Ctx).tx_id = txId;
        outcomes.sent(txId);
        return { ...request, body, headers: headers(sign(key, body)) };
      },
      onResponse: (status, _body, context) => {
        const ctx = context as Ctx;
        if (ctx.tx_id !== undefined) outcomes.answered(ctx.tx_id, status);
      },
    },
  ];
}

/** Duplicates of answered bets, byte for byte; checks the replayed answer is the first answer. */
export function replayRequests(bets: AnsweredBet[], outcomes: Outcomes): autocannon.Request[] {
  let n = 0;
  return [
    {
      method: 'POST',
      path: '/phia/bet',
      setupRequest: (request, context) => {
        const bet = bets[n++ % bets.length] as AnsweredBet;
        (context as Ctx).bet = bet;
        return { ...request, body: bet.body, headers: headers(bet.sign) };
      },
      onResponse: (status, body, context, responseHeaders) => {
        const bet = (context as Ctx).bet;
        if (bet === undefined) return;
        if (responseHeaders?.['idempotent-replayed'] === 'true') outcomes.replayedHeader++;
        if (status !== 200 || body !== bet.answer) outcomes.replayMismatches++;
      },
    },
  ];
}

/** A fixed, signed bet-shaped body for the bare Fastify baseline (same size as a real bet). */
export function fixedRequests(path: string, key: string, player: Player): autocannon.Request[] {
  const body = JSON.stringify({
    user_id: player.user_id,
    currency: CURRENCY,
    session_id: player.session_id,
    game_id: GAME_ID,
    game_session_id: player.game_session_id,
    round_id: 'bench-fixed-round',
    tx_id: 'bench-fixed-tx',
    amount: BET_AMOUNT,
  });
  return [{ method: 'POST', path, body, headers: headers(sign(key, body)) }];
}

/** The body of the i-th bet of a phase, signed. */
function betBody(
  options: RequestFactoryOptions,
  i: number,
): { txId: string; roundId: string; player: Player; body: string } {
  const player = options.players[i % options.players.length] as Player;
  const txId = `${options.tag}-${i}`;
  const roundId = `${options.tag}-r${i}`;
  const body = JSON.stringify({
    user_id: player.user_id,
    currency: CURRENCY,
    session_id: player.session_id,
    game_id: GAME_ID,
    game_session_id: player.game_session_id,
    round_id: roundId,
    tx_id: txId,
    amount: BET_AMOUNT,
  });
  return { txId, roundId, player, body };
}

/** Bets for the open-loop generator: the i-th request of the phase, tracked in its outcomes. */
export function openLoopBets(options: RequestFactoryOptions): (i: number) => OpenLoopRequest {
  return (i) => {
    const { txId, body } = betBody(options, i);
    options.outcomes.sent(txId);
    return {
      path: '/phia/bet',
      body,
      headers: headers(sign(options.key, body)),
      done: (outcome) => {
        if (outcome === 'refused') options.outcomes.refused(txId);
        else if (outcome !== 'timeout') options.outcomes.answered(txId, outcome);
      },
    };
  };
}

/** Balances for the open-loop generator, one player after another. */
export function openLoopBalances(key: string, players: Player[]): (i: number) => OpenLoopRequest {
  return (i) => {
    const player = players[i % players.length] as Player;
    const body = JSON.stringify({ user_id: player.user_id, currency: CURRENCY, session_id: player.session_id });
    return { path: '/phia/balance', body, headers: headers(sign(key, body)) };
  };
}
