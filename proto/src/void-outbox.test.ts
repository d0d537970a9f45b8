import t from 'tap';
import { parseVoidMember, voidMember } from './void-outbox.js';

const job = { kind: 'bet', tx_id: 't-1', error_code: 'WALLET_TIMEOUT' as const, fingerprint: 'fp', attempt_id: 'a-1' };

t.test('a member names its job, and its refusal or its horizon', async (t) => {
  t.same(parseVoidMember(voidMember(job)), job);
  t.same(parseVoidMember(voidMember({ ...job, refusal: true })), { ...job, refusal: true });
  const withHorizon = { ...job, unanswered_after_ms: 1_790_000_000_000 };
  t.same(parseVoidMember(voidMember(withHorizon)), withHorizon);
  t.equal(voidMember({ ...job, unanswered_after_ms: 0 }), voidMember(job), 'no horizon: the member of before');
  t.same(parseVoidMember(JSON.stringify(['bet', 't-1', 'WALLET_TIMEOUT', 'fp', 'a-1', -5])), job, 'not epoch ms: none');
  t.equal(parseVoidMember('not json'), undefined);
  t.equal(parseVoidMember(JSON.stringify(['bet', 't-1', 'NOT_A_CODE'])), undefined);
});
