import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { scheduledLatencies } from '../bench/baselines/bare-sql.js';

t.test("the bare SQL bet's open-loop latency counts pgbench's schedule lag, across its threads' logs", (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'phia-pgbench-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // client transaction time_us script epoch epoch_us schedule_lag_us: 100 transactions of 1 ms each,
  // the last two waited 40 and 90 ms for their turn (lag), split over two threads' files.
  const line = (i: number, lagUs: number) => `${i % 4} ${i} 1000 0 1764770000 ${i} ${lagUs}`;
  const lines = Array.from({ length: 100 }, (_, i) => line(i, i === 98 ? 40_000 : i === 99 ? 90_000 : 0));
  writeFileSync(join(dir, 'tx.123'), `${lines.slice(0, 50).join('\n')}\n`);
  writeFileSync(join(dir, 'tx.123.1'), `${lines.slice(50).join('\n')}\n`);
  t.same(scheduledLatencies(dir), { count: 100, p50: 1, p99: 91, max: 91 });
  t.end();
});
