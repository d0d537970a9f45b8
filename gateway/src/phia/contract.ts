/**
 * The PHIA callback contract as the gateway speaks it (contract sections 2, 4 and 5): field names,
 * limits, body and answer schemas, endpoints, the action → wallet method mapping and the error
 * answer shape. Every PHIA field name lives in this one module, so that aligning with Playhub's own
 * OpenAPI file later is a one-file change.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import type { FastifyBaseLogger } from 'fastify';
import {
  answerClass,
  ERRORS,
  formatAmount,
  isErrorCode,
  MAX_AMOUNT_INTEGER_DIGITS,
  MAX_DECIMALS,
  parseBalance,
  PhiaError,
  type ErrorCode,
  type MoneyKind,
} from '@phia/proto';

/** The four PHIA request types. */
export const ACTIONS = ['balance', 'bet', 'win', 'refund'] as const;
export type Action = (typeof ACTIONS)[number];

export function isAction(value: unknown): value is Action {
  return typeof value === 'string' && (ACTIONS as readonly string[]).includes(value);
}

export function isMoneyAction(action: Action): action is MoneyKind {
  return action !== 'balance';
}

/** Endpoints (contract section 2). */
export const SINGLE_ENDPOINT = '/phia';
export const ACTION_ENDPOINTS: Readonly<Record<Action, string>> = {
  balance: '/phia/balance',
  bet: '/phia/bet',
  win: '/phia/win',
  refund: '/phia/refund',
};

/** The field naming the request type on the single endpoint. */
export const ACTION_FIELD = 'action';

/** The signature header (contract section 3); Node lowercases header names. */
export const SIGNATURE_HEADER = 'x-request-sign';

/** The wallet's gRPC method for each action (wallet.v1.Wallet). */
export const WALLET_METHOD: Readonly<Record<Action, 'GetBalance' | 'Bet' | 'Win' | 'Refund'>> = {
  balance: 'GetBalance',
  bet: 'Bet',
  win: 'Win',
  refund: 'Refund',
};

/** Field limits (contract section 4). Where the contract gives none, a generous bound. */
export const LIMITS = {
  /** tx_id, user_id, round_id (contract), and game_session_id, game_id, bet_tx_id (as the wallet stores them). */
  idMaxLength: 128,
  /** session_id: the contract gives no limit; the wallet keeps up to 256 characters. */
  sessionIdMaxLength: 256,
  currencyPattern: '^[A-Z0-9]{2,10}$',
  /**
   * A non-negative decimal of at most MAX_AMOUNT_INTEGER_DIGITS digits before the point, an optional
   * fraction; no sign, exponent or spaces. The currency's decimals are checked by the processor.
   */
  amountPattern: `^(0|[1-9][0-9]{0,${MAX_AMOUNT_INTEGER_DIGITS - 1}})(\\.[0-9]+)?$`,
  amountMaxLength: MAX_AMOUNT_INTEGER_DIGITS + 1 + MAX_DECIMALS,
} as const;

/**
 * Fields whose JSON number values the body parser keeps as exact text (`"amount": 12.50`). Any other
 * number stays a number, so the schemas refuse it where a string is required.
 */
export const EXACT_NUMBER_FIELDS: ReadonlySet<string> = new Set(['amount']);

/**
 * The wallet stores ids with these limits counted in UTF-16 code units (JS string length), while a
 * schema's maxLength counts code points: `fieldTooLong` refuses at the edge what the ledger would.
 */
const STORED_LENGTH: Readonly<Record<string, number>> = {
  user_id: LIMITS.idMaxLength,
  session_id: LIMITS.sessionIdMaxLength,
  game_id: LIMITS.idMaxLength,
  game_session_id: LIMITS.idMaxLength,
  tx_id: LIMITS.idMaxLength,
  round_id: LIMITS.idMaxLength,
  bet_tx_id: LIMITS.idMaxLength,
};
const FIELDS_OF: Readonly<Record<Action, readonly string[]>> = {
  balance: ['user_id', 'session_id', 'game_id', 'game_session_id'],
  bet: ['user_id', 'session_id', 'game_id', 'game_session_id', 'tx_id', 'round_id'],
  win: ['user_id', 'session_id', 'game_id', 'game_session_id', 'tx_id', 'round_id', 'bet_tx_id'],
  refund: ['user_id', 'session_id', 'game_id', 'game_session_id', 'tx_id', 'round_id', 'bet_tx_id'],
};

/** The first field of a schema-valid body longer than the wallet stores, if any. */
export function fieldTooLong(action: Action, body: Record<string, unknown>): string | undefined {
  return FIELDS_OF[action].find((field) => {
    const value = body[field];
    return typeof value === 'string' && value.length > (STORED_LENGTH[field] ?? LIMITS.idMaxLength);
  });
}

const Id = Type.String({ minLength: 1, maxLength: LIMITS.idMaxLength });
/** Optional text: absent, null or "" (all taken as absent), or a string. */
const OptionalId = Type.Optional(Type.Union([Type.String({ maxLength: LIMITS.idMaxLength }), Type.Null()]));
const OptionalSessionId = Type.Optional(
  Type.Union([Type.String({ maxLength: LIMITS.sessionIdMaxLength }), Type.Null()]),
);
const Currency = Type.String({ pattern: LIMITS.currencyPattern });
/**
 * The JSON parser turns every bare JSON number into its exact source text, so a JSON number amount
 * reaches this schema as a string too: `12.5` and `"12.5"` both arrive as "12.5".
 */
const Amount = Type.String({ pattern: LIMITS.amountPattern, maxLength: LIMITS.amountMaxLength });

const balanceFields = {
  user_id: Id,
  currency: Currency,
  session_id: OptionalSessionId,
  game_id: OptionalId,
  game_session_id: OptionalId,
};

const moneyFields = {
  user_id: Id,
  currency: Currency,
  session_id: OptionalSessionId,
  game_id: OptionalId,
  game_session_id: Id,
  tx_id: Id,
  round_id: Id,
  amount: Amount,
};

const actionField = (action: Action) => ({ [ACTION_FIELD]: Type.Optional(Type.Literal(action)) });

/** Unknown fields are ignored (contract section 2): additional properties stay allowed. */
export const BalanceBody = Type.Object({ ...balanceFields, ...actionField('balance') });
export const BetBody = Type.Object({ ...moneyFields, ...actionField('bet') });
export const WinBody = Type.Object({ ...moneyFields, bet_tx_id: OptionalId, ...actionField('win') });
export const RefundBody = Type.Object({ ...moneyFields, bet_tx_id: OptionalId, ...actionField('refund') });

export type BalanceBodyT = Static<typeof BalanceBody>;
export type MoneyBodyT = Static<typeof WinBody>;

export const BODY_SCHEMA: Readonly<Record<Action, TSchema>> = {
  balance: BalanceBody,
  bet: BetBody,
  win: WinBody,
  refund: RefundBody,
};

/** The single endpoint: `action` is required and picks one of the four bodies. */
export const SingleEndpointBody = Type.Union(
  ACTIONS.map((action) => Type.Intersect([BODY_SCHEMA[action], Type.Object({ [ACTION_FIELD]: Type.Literal(action) })])),
);

/** Answers (contract section 5). */
export const BalanceAnswer = Type.Object(
  { balance: Type.String(), currency: Type.String() },
  { additionalProperties: false },
);
export const MoneyAnswer = Type.Object(
  { balance: Type.String(), currency: Type.String(), tx_id: Type.String() },
  { additionalProperties: false },
);
export const ErrorAnswer = Type.Object({ error: Type.String(), code: Type.String() }, { additionalProperties: false });
export type BalanceAnswerT = Static<typeof BalanceAnswer>;
export type MoneyAnswerT = Static<typeof MoneyAnswer>;
export type ErrorAnswerT = Static<typeof ErrorAnswer>;

export function answerSchema(action: Action | 'any'): Record<string, TSchema> {
  const ok =
    action === 'balance' ? BalanceAnswer : action === 'any' ? Type.Union([MoneyAnswer, BalanceAnswer]) : MoneyAnswer;
  return { 200: ok, '4xx': ErrorAnswer, '5xx': ErrorAnswer };
}

/** The HTTP status of a contract error code. */
export function httpStatusOf(code: ErrorCode): number {
  return ERRORS[code].httpStatus;
}

/** The error answer body of a contract error code (message from the shared table). */
export function errorAnswer(code: ErrorCode): ErrorAnswerT {
  return { error: ERRORS[code].message, code };
}

/** Answer for a path that is not a PHIA endpoint (not a contract code: PHIA never calls it). */
export const NOT_FOUND_ANSWER: ErrorAnswerT = { error: 'not found', code: 'NOT_FOUND' };

/** An answer as sent: status and exact body text (what is stored and replayed), and its code. */
export interface Answer {
  status: number;
  body: string;
  /** `ok` or the contract code answered. */
  code: ErrorCode | 'ok';
  /** Sent from the idempotency store (a copy). */
  replayed: boolean;
}

export function okAnswer(body: BalanceAnswerT | MoneyAnswerT): Answer {
  // Fixed key order: the text is what gets stored and replayed.
  const text =
    'tx_id' in body
      ? JSON.stringify({ balance: body.balance, currency: body.currency, tx_id: body.tx_id })
      : JSON.stringify({ balance: body.balance, currency: body.currency });
  return { status: 200, body: text, code: 'ok', replayed: false };
}

export function errorToAnswer(code: ErrorCode): Answer {
  return { status: httpStatusOf(code), body: JSON.stringify(errorAnswer(code)), code, replayed: false };
}

/** The wallet's balance, checked and given exactly the currency's decimals. */
export function walletBalance(text: unknown, decimals: number): string {
  if (typeof text !== 'string') throw new PhiaError('INTERNAL', 'wallet reply without balance');
  try {
    return formatAmount(parseBalance(text, decimals), decimals);
  } catch {
    throw new PhiaError('INTERNAL', `wallet reply with malformed balance "${text}"`);
  }
}

/** The code of a stored answer (for logs and metrics of replays). */
export function codeFromBody(answer: { status: number; body: string }): ErrorCode | 'ok' {
  if (answer.status === 200) return 'ok';
  try {
    const code = (JSON.parse(answer.body) as { code?: unknown }).code;
    return isErrorCode(code) ? code : 'INTERNAL';
  } catch {
    return 'INTERNAL';
  }
}

/** The code of a failed call: a PhiaError's own, else INTERNAL. */
export function codeOf(error: unknown): ErrorCode {
  return error instanceof PhiaError ? error.code : 'INTERNAL';
}

/** Optional text fields: absent, null and "" all mean "not given". */
export function optional(value: string | null | undefined): string | undefined {
  return value === null || value === undefined || value === '' ? undefined : value;
}

/** Undecided failures are worth a warning; the wallet's declines are the game's normal course. */
export function logWalletError(error: unknown, ctx: { log: FastifyBaseLogger }, action: string): void {
  const [code, detail] = [codeOf(error), error instanceof PhiaError ? error.detail : String(error)];
  ctx.log[answerClass(code) === 'undecided' ? 'warn' : 'debug']({ action, code, detail }, 'wallet call failed');
}
