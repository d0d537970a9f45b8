/** The wallet link's mutual-TLS settings, named by contract section 8 for both services. */
export const WALLET_TLS_VARIABLES = ['WALLET_TLS_CA_FILE', 'WALLET_TLS_CERT_FILE', 'WALLET_TLS_KEY_FILE'] as const;

/**
 * The link is plaintext for now: a start-up problem for each TLS file set, because an operator who
 * sets them must not believe the link is protected when it is not.
 */
export function unsupportedWalletTls(env: Record<string, string | undefined>): string[] {
  return WALLET_TLS_VARIABLES.filter((name) => (env[name] ?? '') !== '').map(
    (name) =>
      `${name} is set, but mutual TLS on the wallet link is not supported yet: unset it and keep the wallet's port private`,
  );
}
