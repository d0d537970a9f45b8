/**
 * The gateway's V8 heap bound: set at start-up unless the command line sets it.
 */
import t from 'tap';
import { boundHeapGrowth } from './server.js';

t.test('boundHeapGrowth: set unless given on the command line', async (t) => {
  t.equal(boundHeapGrowth(['--heap-growing-percent=30']), false, 'command line wins');
  t.equal(boundHeapGrowth(['--heap_growing_percent', '30']), false, 'either spelling');
  t.equal(boundHeapGrowth(['--max-semi-space-size=4']), true, 'set otherwise');
});
