/**
 * PHIA's request signature (contract section 3): lowercase hex HMAC-SHA256 of the raw body bytes,
 * keyed with the callback key, in `X-REQUEST-SIGN`. Several keys may be valid at once (rotation).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

const HEX_SHA256 = /^[0-9a-fA-F]{64}$/;

/** The signature PHIA would send for `raw` with `key`. */
export function signBody(key: string | Buffer, raw: Buffer | string): string {
  return createHmac('sha256', key).update(raw).digest('hex');
}

export class SignatureVerifier {
  readonly #keys: readonly Buffer[];

  constructor(keys: readonly string[]) {
    if (keys.length === 0) throw new Error('SignatureVerifier needs at least one key');
    this.#keys = keys.map((key) => Buffer.from(key, 'utf8'));
  }

  /**
   * True when `header` is the HMAC of `raw` under any configured key. Every key is tried (no early
   * exit) and digests are compared in constant time.
   */
  verify(raw: Buffer, header: string | string[] | undefined): boolean {
    if (typeof header !== 'string') return false;
    const text = header.trim();
    if (!HEX_SHA256.test(text)) return false;
    const given = Buffer.from(text, 'hex');
    let ok = false;
    for (const key of this.#keys) {
      const expected = createHmac('sha256', key).update(raw).digest();
      if (timingSafeEqual(expected, given)) ok = true;
    }
    return ok;
  }
}
