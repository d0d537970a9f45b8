import t from 'tap';
import { parseAmount } from './money.js';
t.equal(parseAmount('1.5', 2), 150n);
