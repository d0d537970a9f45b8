import t from 'tap';
import {
  buildCurrencyTable,
  currencyDecimals,
  fitsBalance,
  formatAmount,
  normalizeAmount,
  parseAmount,
  parseBalance,
} from './money.js';
import { PhiaError } from './errors.js';

t.test('parse and format are exact and inverse', async (t) => {
  t.equal(parseAmount('12.5', 2), 1250n);
  t.equal(parseAmount('0', 18), 0n);
  t.equal(parseAmount('123456789012345678.123456789012345678', 18), 123456789012345678123456789012345678n);
  t.equal(formatAmount(1250n, 2), '12.50');
  t.equal(formatAmount(5n, 8), '0.00000005');
  t.equal(formatAmount(-5n, 2), '-0.05');
  t.equal(formatAmount(1500n, 0), '1500');
  t.equal(normalizeAmount('0.1', 18), '0.100000000000000000');
  // The float trap: 0.1 + 0.2 in units is exactly 0.3.
  t.equal(formatAmount(parseAmount('0.1', 2) + parseAmount('0.2', 2), 2), '0.30');
});

t.test('bad amounts are INVALID_REQUEST', async (t) => {
  for (const bad of [
    '',
    '-1',
    '+1',
    '1e2',
    '1.',
    '.1',
    '01',
    '1,5',
    ' 1',
    'NaN',
    'Infinity',
    '1'.repeat(19),
    `${'9'.repeat(19)}.99`,
    '1.001',
  ]) {
    t.throws(() => parseAmount(bad, 2), PhiaError, `"${bad}"`);
  }
});

t.test('amounts hold 18 digits before the point, balances 24', async (t) => {
  t.equal(parseAmount('999999999999999999.99', 2), 99999999999999999999n);
  t.equal(parseBalance(`${'9'.repeat(24)}.99`, 2), 10n ** 26n - 1n);
  t.throws(() => parseBalance('1'.repeat(25), 2), { code: 'INVALID_REQUEST' });
  t.ok(fitsBalance(10n ** 26n - 1n, 2), 'the largest balance with 2 decimals');
  t.notOk(fitsBalance(10n ** 26n, 2), '10^24 does not fit');
  t.notOk(fitsBalance(10n ** 24n, 0), 'nor without decimals');
});

t.test('currency table', async (t) => {
  const table = buildCurrencyTable('XAU:4');
  t.equal(currencyDecimals(table, 'XAU'), 4);
  t.equal(currencyDecimals(table, 'ETH'), 18);
  t.throws(() => currencyDecimals(table, 'NOPE'), { code: 'INVALID_REQUEST' });
  t.throws(() => buildCurrencyTable('usd:2'), /CODE:decimals/);
  t.throws(() => buildCurrencyTable('USD:19'), /CODE:decimals/);
});
