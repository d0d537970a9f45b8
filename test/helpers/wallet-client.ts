/** A small promise client over wallet.v1.Wallet for tests (the gateway has its own production client). */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { PROTO_LOADER_OPTIONS, WALLET_ERROR_CODE_KEY, WALLET_PROTO_PATH } from '@phia/proto';

export class WalletCallError extends Error {
  constructor(
    readonly grpcCode: number,
    /** The contract code from trailing metadata, or '' when there is none. */
    readonly code: string,
    details: string,
  ) {
    super(`${code || grpcCode}: ${details}`);
  }
}

const METHODS = [
  'GetBalance',
  'Bet',
  'Win',
  'Refund',
  'Void',
  'Deposit',
  'Withdraw',
  'OpenSession',
  'CloseSession',
  'SetAccountStatus',
  'GetTransaction',
] as const;

export type WalletTestClient = Record<
  (typeof METHODS)[number],
  (request: object, options?: CallOptions) => Promise<Record<string, string>>
> & { close(): void };

export interface CallOptions {
  deadlineMs?: number;
  /** Extra request metadata (e.g. x-deadline-ms). */
  metadata?: Record<string, string>;
}

/** `credentials`: the wallet link's TLS (a client certificate) when the wallet requires it. */
export function walletTestClient(
  address: string,
  credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
): WalletTestClient {
  const definition = protoLoader.loadSync(WALLET_PROTO_PATH, PROTO_LOADER_OPTIONS);
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    wallet: { v1: { Wallet: grpc.ServiceClientConstructor } };
  };
  const client = new loaded.wallet.v1.Wallet(address, credentials) as unknown as Record<
    string,
    (
      request: object,
      metadata: grpc.Metadata,
      options: grpc.CallOptions,
      callback: (error: grpc.ServiceError | null, reply: Record<string, string>) => void,
    ) => void
  > &
    grpc.Client;
  const api: Record<string, unknown> = { close: () => client.close() };
  for (const method of METHODS) {
    api[method] = (request: object, options: CallOptions = {}) =>
      new Promise((resolve, reject) => {
        const fn = client[method];
        if (!fn) throw new Error(`no method ${method}`);
        const metadata = new grpc.Metadata();
        for (const [key, value] of Object.entries(options.metadata ?? {})) metadata.set(key, value);
        fn.call(client, request, metadata, { deadline: Date.now() + (options.deadlineMs ?? 5000) }, (error, reply) => {
          if (error) {
            const code = error.metadata?.get(WALLET_ERROR_CODE_KEY)[0]?.toString() ?? '';
            reject(new WalletCallError(error.code, code, error.details));
            return;
          }
          resolve(reply);
        });
      });
  }
  return api as WalletTestClient;
}

/**
 * Resolves once the wallet answers a call (its database is ready): a balance of nobody, which is
 * ACCOUNT_NOT_FOUND on a ready wallet. Throws the last error after `timeoutMs`.
 */
export async function waitForWallet(client: WalletTestClient, timeoutMs = 60_000): Promise<void> {
  for (const started = Date.now(); ; await new Promise((done) => setTimeout(done, 200))) {
    try {
      await client.GetBalance({ user_id: 'nobody', currency: 'USD' }, { deadlineMs: 2000 });
      return;
    } catch (error) {
      if (error instanceof WalletCallError && error.code === 'ACCOUNT_NOT_FOUND') return;
      if (Date.now() - started > timeoutMs) throw error;
    }
  }
}
