/** The wallet's Wallet and Admin services for the CLI: WALLET_ADDR, and the link's TLS files. */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { MethodDefinition } from '@grpc/proto-loader';
import {
  PROTO_LOADER_OPTIONS,
  readWalletTls,
  WALLET_ERROR_CODE_KEY,
  WALLET_PROTO_PATH,
  type AdminDefinition,
  type WalletDefinition,
} from '@phia/proto';

export class UsageError extends Error {}

/** The wallet could not be reached, or the link's settings are wrong (exit code 3). */
export class UnreachableError extends Error {}

/** A decline of the wallet's, with the contract code (exit code 1). */
export class WalletDecline extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

type RequestOf<D> = D extends MethodDefinition<infer Request, infer _R, infer _Q, infer _O> ? Request : never;
type ReplyOf<D> = D extends MethodDefinition<infer _R, infer _Q, infer _O, infer Reply> ? Reply : never;
/** One unary call of a service, typed by the types generated from wallet.proto. */
export type Call<Service> = <M extends keyof Service & string>(
  method: M,
  request: RequestOf<Service[M]>,
) => Promise<ReplyOf<Service[M]>>;

type UnaryMethod = (
  request: unknown,
  options: grpc.CallOptions,
  callback: (error: grpc.ServiceError | null, reply: unknown) => void,
) => void;

export interface WalletLink {
  wallet: Call<WalletDefinition>;
  admin: Call<AdminDefinition>;
  close(): void;
}

export function connectWallet(env: NodeJS.ProcessEnv, timeoutMs = 5000): WalletLink {
  const problems: string[] = [];
  const tls = readWalletTls(env, problems);
  if (problems.length > 0) throw new UnreachableError(problems.join('; '));
  const credentials =
    tls === undefined ? grpc.credentials.createInsecure() : grpc.credentials.createSsl(tls.ca, tls.key, tls.cert);
  const address = env.WALLET_ADDR || '127.0.0.1:50051';
  const loaded = grpc.loadPackageDefinition(
    protoLoader.loadSync(WALLET_PROTO_PATH, PROTO_LOADER_OPTIONS),
  ) as unknown as {
    wallet: { v1: { Wallet: grpc.ServiceClientConstructor; Admin: grpc.ServiceClientConstructor } };
  };
  const clients = [new loaded.wallet.v1.Wallet(address, credentials), new loaded.wallet.v1.Admin(address, credentials)];
  const caller =
    (client: grpc.Client) =>
    (method: string, request: unknown): Promise<never> =>
      new Promise((resolve, reject) => {
        const fn = (client as unknown as Record<string, UnaryMethod | undefined>)[method];
        if (typeof fn !== 'function') throw new Error(`no method ${method}`);
        fn.call(client, request, { deadline: Date.now() + timeoutMs }, (error, reply) => {
          if (error === null) return resolve(reply as never);
          const code = error.metadata?.get(WALLET_ERROR_CODE_KEY)[0]?.toString();
          if (code !== undefined) return reject(new WalletDecline(code, `${code}: ${error.details}`));
          if (error.code === grpc.status.UNAVAILABLE || error.code === grpc.status.DEADLINE_EXCEEDED) {
            return reject(new UnreachableError(`wallet ${address}: ${error.details}`));
          }
          reject(new Error(`wallet ${address}: ${error.details}`));
        });
      });
  return {
    wallet: caller(clients[0] as grpc.Client),
    admin: caller(clients[1] as grpc.Client),
    close: () => clients.forEach((client) => client.close()),
  };
}
