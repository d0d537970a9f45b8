import t from 'tap';
import { buildCurrencyTable, currencyDecimals, formatAmount, normalizeAmount, parseAmount } from './money.js';
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
    '1'.repeat(25),
    '1.001',
  ]) {
    t.throws(() => parseAmount(bad, 2), PhiaError, `"${bad}"`);
  }
});

t.test('currency table', async (t) => {
  const table = buildCurrencyTable('XAU:4');
  t.equal(currencyDecimals(table, 'XAU'), 4);
  t.equal(currencyDecimals(table, 'ETH'), 18);
  t.throws(() => currencyDecimals(table, 'NOPE'), { code: 'INVALID_REQUEST' });
  t.throws(() => buildCurrencyTable('usd:2'), /CODE:decimals/);
  t.throws(() => buildCurrencyTable('USD:19'), /CODE:decimals/);
});
