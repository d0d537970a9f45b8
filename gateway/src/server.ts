/**
 * Starts the gateway from the environment (contract section 8): `node gateway/dist/server.js`.
 * SIGTERM and SIGINT close it gracefully (in-flight requests finish, resources close); so does an
 * uncaught error, which then exits 1.
 */
import { readFileSync } from 'node:fs';
import type { Server as HttpsServer } from 'node:https';
import { pathToFileURL } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import closeWithGrace from 'close-with-grace';
import type { FastifyInstance } from 'fastify';
import { buildApp, type BuildAppOptions } from './app.js';
import { LISTEN_BACKLOG } from './plugins/app/admission.js';
import { ConfigError, loadConfig, type Env, type GatewayConfig } from './config.js';

export interface StartGatewayOptions extends Partial<Omit<BuildAppOptions, 'config'>> {
  /** Default: loadConfig(env). */
  config?: GatewayConfig;
  env?: Env;
}

export interface RunningGateway {
  app: FastifyInstance;
  config: GatewayConfig;
  /** e.g. http://127.0.0.1:8080 */
  url: string;
  port: number;
  /** Re-reads TLS_CERT_FILE and TLS_KEY_FILE for new connections (SIGHUP); false without TLS. */
  reloadTls(): boolean;
  close(): Promise<void>;
}

/** Builds the app and listens on GATEWAY_HOST:GATEWAY_PORT (port 0: a free one). */
export async function startGateway(options: StartGatewayOptions = {}): Promise<RunningGateway> {
  const config = options.config ?? loadConfig(options.env ?? process.env);
  const { config: _ignored, env: _env, ...rest } = options;
  const app = await buildApp({ ...rest, config });
  if (config.generatedDevKey !== undefined) {
    // Printed on purpose, outside the (redacting) logger: the developer needs it to sign requests.
    console.log(`PHIA_SIGNING_KEYS not set: generated development key ${config.generatedDevKey}`);
  }
  try {
    await app.listen({ host: config.host, port: config.port, backlog: LISTEN_BACKLOG });
  } catch (error) {
    await app.close();
    throw error;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.port;
  const scheme = config.tlsCertFile === undefined ? 'http' : 'https';
  const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
  const reloadTls = (): boolean => {
    if (config.tlsCertFile === undefined || config.tlsKeyFile === undefined) return false;
    (app.server as unknown as HttpsServer).setSecureContext({
      cert: readFileSync(config.tlsCertFile),
      key: readFileSync(config.tlsKeyFile),
    });
    return true;
  };
  return {
    app,
    config,
    url: `${scheme}://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    reloadTls,
    close: () => app.close(),
  };
}

/**
 * V8 lets the old generation grow to a multiple of what survived its last full GC, up to 4x when GC
 * looks cheap, and keeps what it committed: under load the gateway's heap reached 120 to 130 MB for
 * about 32 MB alive (RSS about 190 MB after a minute of load). A fixed factor of 1.5 keeps it at 55 to
 * 60 MB (RSS about 120 MB) with no CPU cost measured (BENCHMARKS.md, "Gateway memory").
 * `--heap-growing-percent` is not allowed in NODE_OPTIONS, so it is set here, at start-up; the flag is
 * read at every GC. A `--heap-growing-percent` given on the command line wins.
 */
export const HEAP_GROWING_PERCENT = 50;

export function boundHeapGrowth(execArgv: readonly string[] = process.execArgv): boolean {
  if (execArgv.some((arg) => /^--heap[-_]growing[-_]percent\b/.test(arg))) return false;
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
  return true;
}

async function main(): Promise<void> {
  boundHeapGrowth();
  let gateway: RunningGateway;
  try {
    gateway = await startGateway();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(78); // EX_CONFIG
    }
    throw error;
  }
  // SIGTERM and SIGINT close gracefully (exit 0). An uncaught error closes the same way (readiness
  // turns false, in-flight requests finish), then exits 1 so the supervisor starts a fresh process.
  closeWithGrace(
    { delay: 10_000, skip: ['SIGHUP'], logger: { error: (message) => gateway.app.log.error(message) } },
    async ({ signal, err }) => {
      if (err !== undefined) gateway.app.log.fatal({ err }, 'uncaught error: closing, then exiting');
      else gateway.app.log.info({ signal }, 'closing');
      await gateway.close();
      gateway.app.log.info('closed');
    },
  );
  process.on('SIGHUP', () => {
    try {
      if (gateway.reloadTls()) gateway.app.log.info('TLS certificate reloaded');
    } catch (error) {
      // Keep serving with the certificate already loaded.
      gateway.app.log.error({ err: (error as Error).message }, 'TLS certificate reload failed');
    }
  });
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
