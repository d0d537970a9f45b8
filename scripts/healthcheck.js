#!/usr/bin/env node
/**
 * Health probes for the two services, usable as a module (scripts/start.js) and as a command
 * (Dockerfile HEALTHCHECK, docker-compose healthcheck):
 *
 *   node scripts/healthcheck.js grpc [host:port] [service]   wallet: grpc.health.v1.Health/Check is SERVING
 *   node scripts/healthcheck.js http [path]                  gateway: GET path (default /healthz) answers 200
 *
 * Defaults come from the same environment variables the services read: WALLET_HOST and WALLET_PORT
 * (grpc probe; mutual TLS with the WALLET_TLS_* files when they are set), GATEWAY_HOST, GATEWAY_PORT and TLS_CERT_FILE (http probe, HTTPS when a certificate is
 * configured; the certificate is not verified, the probe only asks whether the process answers).
 * A wildcard listen address (0.0.0.0, ::) is probed on loopback.
 * Exit code 0 when healthy, 1 otherwise; one line on stderr says why.
 *
 * The gRPC probe needs no .proto file: HealthCheckRequest and HealthCheckResponse are encoded by hand
 * (field 1, a string / an enum), so it only depends on @grpc/grpc-js, which both images ship.
 */
import { Buffer } from 'node:buffer';
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { pathToFileURL } from 'node:url';

const SERVING_STATUS = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];

/** Splits "host:port" / "[::1]:port" into its parts. */
export function splitAddress(address) {
  const match = /^(?:dns:\/*)?(\[[^\]]+\]|[^:]+):(\d+)$/.exec(address);
  if (!match) throw new Error(`not a host:port address: ${address}`);
  return { host: match[1].replace(/^\[|\]$/g, ''), port: Number(match[2]) };
}

/** Resolves true when something accepts TCP connections on host:port within timeoutMs. */
export function checkPort(address, timeoutMs = 1000) {
  const { host, port } = splitAddress(address);
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

function encodeHealthRequest(service) {
  if (service === '') return Buffer.alloc(0);
  const name = Buffer.from(service, 'utf8');
  if (name.length > 127) throw new Error('service name too long for this probe');
  return Buffer.concat([Buffer.from([0x0a, name.length]), name]);
}

function decodeHealthStatus(buffer) {
  // HealthCheckResponse { ServingStatus status = 1; } - absent field means UNKNOWN (0).
  if (buffer.length >= 2 && buffer[0] === 0x08) return SERVING_STATUS[buffer[1]] ?? `STATUS_${buffer[1]}`;
  return 'UNKNOWN';
}

/**
 * The wallet link's credentials from WALLET_TLS_CA_FILE, WALLET_TLS_CERT_FILE and WALLET_TLS_KEY_FILE
 * (mutual TLS, as the services use them), plaintext when they are unset.
 */
function grpcCredentials(grpc, env) {
  const files = [env.WALLET_TLS_CA_FILE, env.WALLET_TLS_KEY_FILE, env.WALLET_TLS_CERT_FILE];
  if (files.some((file) => !file)) return grpc.credentials.createInsecure();
  const [ca, key, cert] = files.map((file) => readFileSync(file));
  return grpc.credentials.createSsl(ca, key, cert);
}

/**
 * Calls grpc.health.v1.Health/Check on address for service ('' = the server as a whole).
 * Resolves { ok, status } and never rejects: { ok: false, status: <error text> } when unreachable.
 */
export async function checkGrpcHealth(address, service = '', timeoutMs = 2000) {
  let grpc;
  try {
    grpc = await import('@grpc/grpc-js');
  } catch {
    // Without grpc-js (should not happen: both services depend on it) a listening port is the best we can tell.
    const open = await checkPort(address, timeoutMs);
    return { ok: open, status: open ? 'PORT_OPEN' : 'PORT_CLOSED' };
  }
  let credentials;
  try {
    credentials = grpcCredentials(grpc, process.env);
  } catch (error) {
    return { ok: false, status: `wallet TLS files: ${error instanceof Error ? error.message : String(error)}` };
  }
  const client = new grpc.Client(address, credentials);
  try {
    const reply = await new Promise((resolve, reject) => {
      client.makeUnaryRequest(
        '/grpc.health.v1.Health/Check',
        (value) => value,
        (value) => value,
        encodeHealthRequest(service),
        new grpc.Metadata(),
        { deadline: Date.now() + timeoutMs },
        (error, value) => (error ? reject(error) : resolve(value)),
      );
    });
    const status = decodeHealthStatus(reply);
    return { ok: status === 'SERVING', status };
  } catch (error) {
    return { ok: false, status: error instanceof Error ? error.message : String(error) };
  } finally {
    client.close();
  }
}

/** GET url; resolves { ok, status } (status = HTTP status or error text), never rejects. TLS is not verified. */
export function checkHttp(url, timeoutMs = 2000) {
  return new Promise((resolve) => {
    const target = new URL(url);
    const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = send(target, { method: 'GET', timeout: timeoutMs, rejectUnauthorized: false }, (res) => {
      res.resume();
      res.once('end', () => resolve({ ok: res.statusCode === 200, status: res.statusCode }));
    });
    req.once('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.once('error', (error) => resolve({ ok: false, status: error.message }));
    req.end();
  });
}

/** Where to reach a server listening on `host` from this machine: loopback for the wildcard addresses. */
export function probeHost(host) {
  if (!host || host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}

/** The gateway's local base URL from GATEWAY_HOST, GATEWAY_PORT and TLS_CERT_FILE. */
export function localGatewayUrl(env = process.env) {
  const scheme = env.TLS_CERT_FILE ? 'https' : 'http';
  return `${scheme}://${probeHost(env.GATEWAY_HOST)}:${env.GATEWAY_PORT || 8080}`;
}

/** The wallet's local gRPC address from WALLET_HOST and WALLET_PORT. */
export function localWalletAddress(env = process.env) {
  return `${probeHost(env.WALLET_HOST)}:${env.WALLET_PORT || 50051}`;
}

async function main(argv) {
  const [mode, ...rest] = argv;
  if (mode === 'grpc') {
    const address = rest[0] || localWalletAddress();
    const result = await checkGrpcHealth(address, rest[1] ?? '');
    if (!result.ok) console.error(`wallet ${address} not healthy: ${result.status}`);
    return result.ok ? 0 : 1;
  }
  if (mode === 'http') {
    const path = rest[0] || '/healthz';
    const url = /^https?:\/\//.test(path) ? path : `${localGatewayUrl()}${path}`;
    const result = await checkHttp(url);
    if (!result.ok) console.error(`gateway ${url} not healthy: ${result.status}`);
    return result.ok ? 0 : 1;
  }
  console.error('usage: node scripts/healthcheck.js grpc [host:port] [service] | http [path|url]');
  return 2;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error) => {
      console.error(error instanceof Error ? error.message : error);
      process.exit(1);
    },
  );
}
