import t from 'tap';
import { IDS_PER_REFILL, newAttemptId } from './attempt-id.js';

t.test('attempt ids: 16 base64url characters, none repeated across refills of their random pool', (t) => {
  const ids = Array.from({ length: 3 * IDS_PER_REFILL + 5 }, () => newAttemptId());
  t.ok(
    ids.every((id) => /^[A-Za-z0-9_-]{16}$/.test(id)),
    'each is 16 base64url characters',
  );
  t.equal(new Set(ids).size, ids.length, 'all distinct');
  t.end();
});
