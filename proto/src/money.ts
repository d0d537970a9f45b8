/**
 * Money as exact decimals: strings on the wire, bigint scaled integers inside. No JS number ever
 * holds an amount.
 */
import { PhiaError } from './errors.js';

/** Sensible defaults; WALLET_CURRENCIES / CURRENCIES can add to or override them. */
export const DEFAULT_CURRENCY_DECIMALS: Readonly<Record<string, number>> = Object.freeze({
  USD: 2,
  EUR: 2,
  GBP: 2,
  CAD: 2,
  AUD: 2,
  NZD: 2,
  CHF: 2,
  SEK: 2,
  NOK: 2,
  DKK: 2,
  PLN: 2,
  CZK: 2,
  BRL: 2,
  MXN: 2,
  INR: 2,
  TRY: 2,
  ZAR: 2,
  UAH: 2,
  KZT: 2,
  CNY: 2,
  HKD: 2,
  SGD: 2,
  PHP: 2,
  THB: 2,
  JPY: 0,
  KRW: 0,
  VND: 0,
  IDR: 0,
  CLP: 0,
  BTC: 8,
  LTC: 8,
  BCH: 8,
  DOGE: 8,
  ETH: 18,
  BNB: 18,
  TRX: 6,
  USDT: 6,
  USDC: 6,
  SOL: 9,
  XRP: 6,
  TON: 9,
});

export const MAX_DECIMALS = 18;
/** Digits before the point of an amount: bet, win, refund, deposit, withdrawal (contract section 4). */
export const MAX_AMOUNT_INTEGER_DIGITS = 18;
/**
 * Digits before the point of a balance (contract rule 10): a credit that would pass it is declined.
 * The wallet's SQL constraints are built from these constants (wallet-service migrations).
 */
export const MAX_BALANCE_INTEGER_DIGITS = 24;
const CURRENCY_CODE = /^[A-Z0-9]{2,10}$/;
const DECIMAL_TEXT = /^(0|[1-9][0-9]*)(?:\.([0-9]+))?$/;

export type CurrencyTable = ReadonlyMap<string, number>;

/**
 * Builds the currency table: the defaults plus `spec`, a comma-separated list of `CODE:decimals`
 * (e.g. `USD:2,XAU:4`). Throws a plain Error with a clear message when the spec is malformed.
 */
export function buildCurrencyTable(spec?: string): CurrencyTable {
  const table = new Map<string, number>(Object.entries(DEFAULT_CURRENCY_DECIMALS));
  if (spec === undefined || spec.trim() === '') return table;
  for (const item of spec.split(',')) {
    const match = /^\s*([A-Z0-9]{2,10}):([0-9]{1,2})\s*$/.exec(item);
    const decimals = match ? Number(match[2]) : NaN;
    if (!match || !(decimals <= MAX_DECIMALS)) {
      throw new Error(`currency entry "${item.trim()}" must look like CODE:decimals with decimals 0-${MAX_DECIMALS}`);
    }
    table.set(match[1] as string, decimals);
  }
  return table;
}

export function isCurrencyCode(value: string): boolean {
  return CURRENCY_CODE.test(value);
}

/** Decimals of a configured currency, or INVALID_REQUEST for an unknown one. */
export function currencyDecimals(table: CurrencyTable, currency: string): number {
  const decimals = table.get(currency);
  if (decimals === undefined) throw new PhiaError('INVALID_REQUEST', `unknown currency ${currency}`);
  return decimals;
}

/**
 * Parses a non-negative decimal string into scaled integer units (e.g. "12.5" with 2 decimals → 1250n).
 * Refuses signs, exponents, spaces, more than `decimals` fraction digits, and more than
 * `maxIntegerDigits` digits before the point (an amount's limit unless told otherwise).
 */
export function parseAmount(text: string, decimals: number, maxIntegerDigits = MAX_AMOUNT_INTEGER_DIGITS): bigint {
  const match = DECIMAL_TEXT.exec(text);
  if (!match) throw new PhiaError('INVALID_REQUEST', 'amount must be a non-negative decimal');
  const whole = match[1] as string;
  const fraction = match[2] ?? '';
  if (whole.length > maxIntegerDigits) {
    throw new PhiaError('INVALID_REQUEST', `more than ${maxIntegerDigits} digits before the point`);
  }
  if (fraction.length > decimals) {
    throw new PhiaError('INVALID_REQUEST', `amount has more than ${decimals} decimals`);
  }
  return BigInt(whole + fraction.padEnd(decimals, '0'));
}

/** Parses a balance (a stored or answered one): anything a balance may hold, up to its limit. */
export function parseBalance(text: string, decimals: number): bigint {
  return parseAmount(text, decimals, MAX_BALANCE_INTEGER_DIGITS);
}

/** Whether scaled units fit in a balance: at most MAX_BALANCE_INTEGER_DIGITS digits before the point. */
export function fitsBalance(units: bigint, decimals: number): boolean {
  return units < 10n ** BigInt(MAX_BALANCE_INTEGER_DIGITS + decimals);
}

/** Formats scaled units with exactly `decimals` fraction digits ("1250n, 2" → "12.50"). */
export function formatAmount(units: bigint, decimals: number): string {
  const negative = units < 0n;
  const digits = (negative ? -units : units).toString().padStart(decimals + 1, '0');
  const whole = digits.slice(0, digits.length - decimals);
  const fraction = digits.slice(digits.length - decimals);
  return (negative ? '-' : '') + (decimals === 0 ? whole : `${whole}.${fraction}`);
}

/** Normalizes a decimal string to exactly the currency's decimals ("12.5" → "12.50"). */
export function normalizeAmount(text: string, decimals: number): string {
  return formatAmount(parseAmount(text, decimals), decimals);
}
