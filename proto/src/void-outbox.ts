/**
 * The Redis layout of the gateways' void outbox, shared by the gateway (which fills and drains it) and
 * phia-admin (which lists and reschedules it): a sorted set of jobs scored by the next attempt time,
 * a hash of attempts so far, and a hash of when each job was queued (epoch ms), all keyed by member.
 */
import { isErrorCode, type ErrorCode } from './errors.js';

export interface VoidOutboxKeys {
  /** Sorted set: member → next attempt (epoch ms). */
  jobs: string;
  /** Hash: member → attempts so far. */
  attempts: string;
  /** Hash: member → when it was queued (epoch ms). */
  enqueued: string;
}

export function voidOutboxKeys(prefix: string): VoidOutboxKeys {
  return { jobs: `${prefix}voids`, attempts: `${prefix}voids:attempts`, enqueued: `${prefix}voids:enqueued` };
}

/** What a member names: wallet `Void {kind, tx_id, error_code, fingerprint, attempt_id}`. */
export interface VoidMember {
  kind: string;
  tx_id: string;
  error_code: ErrorCode;
  fingerprint: string;
  attempt_id: string;
  /** A refusal's void (its tombstone claims no answer for the key): a sixth field, 'refusal'. */
  refusal?: true;
  /** The void's horizon (wallet.proto `unanswered_after_ms`): a sixth field, a number, absent when 0. */
  unanswered_after_ms?: number;
}

export function voidMember(job: VoidMember): string {
  const { kind, tx_id, error_code, fingerprint, attempt_id, refusal, unanswered_after_ms: horizon } = job;
  const sixth = refusal ? ['refusal'] : horizon ? [horizon] : [];
  return JSON.stringify([kind, tx_id, error_code, fingerprint, attempt_id, ...sixth]);
}

/** The job a member names, or undefined when it was not written by voidMember. */
export function parseVoidMember(text: string): VoidMember | undefined {
  try {
    const [kind, tx_id, error_code, fingerprint, attempt_id, sixth] = JSON.parse(text) as unknown[];
    if (typeof kind === 'string' && typeof tx_id === 'string' && isErrorCode(error_code)) {
      const optional = (value: unknown) => (typeof value === 'string' ? value : '');
      const job = { kind, tx_id, error_code, fingerprint: optional(fingerprint), attempt_id: optional(attempt_id) };
      if (sixth === 'refusal') return { ...job, refusal: true };
      return Number.isSafeInteger(sixth) && (sixth as number) > 0
        ? { ...job, unanswered_after_ms: sixth as number }
        : job;
    }
  } catch {
    // not JSON
  }
  return undefined;
}
