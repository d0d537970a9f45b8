import { randomFillSync } from 'node:crypto';

/**
 * An attempt's id names it in the ledger and in its answer records (C): unique within one key is
 * enough, so 96 random bits in 16 characters, which every stored answer carries. The bits come from a
 * pool refilled 4 KiB at a time, as randomUUID's do: randomBytes per id was a system call per bet.
 */
const ATTEMPT_ID_BYTES = 12;
/** Ids drawn from one fill of the pool (4,092 bytes). */
export const IDS_PER_REFILL = 341;
const attemptIdPool = Buffer.alloc(IDS_PER_REFILL * ATTEMPT_ID_BYTES);
let attemptIdOffset = attemptIdPool.length;
export function newAttemptId(): string {
  if (attemptIdOffset + ATTEMPT_ID_BYTES > attemptIdPool.length) {
    randomFillSync(attemptIdPool);
    attemptIdOffset = 0;
  }
  const id = attemptIdPool.toString('base64url', attemptIdOffset, attemptIdOffset + ATTEMPT_ID_BYTES);
  attemptIdOffset += ATTEMPT_ID_BYTES;
  return id;
}
