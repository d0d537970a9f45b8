import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { createSecureContext } from 'node:tls';

/** The wallet link's mutual-TLS settings, named by contract section 8 for both services. */
export const WALLET_TLS_VARIABLES = ['WALLET_TLS_CA_FILE', 'WALLET_TLS_CERT_FILE', 'WALLET_TLS_KEY_FILE'] as const;

/** PEM contents of the wallet link's files: the CA both sides trust, and this side's certificate and key. */
export interface WalletTls {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

/**
 * Reads the wallet link's TLS files once, at start-up: all three or none. Each problem goes to
 * `problems` with its variable's name (never a file's contents); undefined when the link is plaintext
 * or a problem was found.
 */
export function readWalletTls(env: Record<string, string | undefined>, problems: string[]): WalletTls | undefined {
  const set = WALLET_TLS_VARIABLES.filter((name) => (env[name] ?? '') !== '');
  if (set.length === 0) return undefined;
  if (set.length < WALLET_TLS_VARIABLES.length) {
    const missing = WALLET_TLS_VARIABLES.filter((name) => !set.includes(name));
    problems.push(`${missing.join(' and ')} must be set too: mutual TLS on the wallet link needs all three files`);
    return undefined;
  }
  const before = problems.length;
  const read = (name: (typeof WALLET_TLS_VARIABLES)[number]): Buffer => {
    const path = env[name] as string;
    try {
      const contents = readFileSync(path);
      if (!contents.includes('-----BEGIN ')) problems.push(`${name}: ${path} is not a PEM file`);
      return contents;
    } catch (error) {
      problems.push(`${name}: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
      return Buffer.alloc(0);
    }
  };
  const tls = { ca: read('WALLET_TLS_CA_FILE'), cert: read('WALLET_TLS_CERT_FILE'), key: read('WALLET_TLS_KEY_FILE') };
  if (problems.length > before) return undefined;
  try {
    // Catches a key that is not the certificate's, or a file that does not parse, before the first call.
    createSecureContext({ ca: tls.ca, cert: tls.cert, key: tls.key });
  } catch (error) {
    problems.push(`WALLET_TLS_*: the files do not make a TLS identity (${(error as Error).message})`);
    return undefined;
  }
  return tls;
}

/** Whether only this machine can reach `host` (a listen address, or the host part of an address). */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '');
  if (bare === 'localhost') return true;
  if (isIP(bare) === 4) return bare.startsWith('127.');
  return bare === '::1';
}
