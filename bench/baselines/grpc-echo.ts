/**
 * Baseline: a grpc-js unary echo, called from a Fastify route, as the gateway calls the wallet.
 *
 *   grpc-echo.ts server   a grpc-js server (the wallet's server options) answering Echo at once
 *   grpc-echo.ts front <grpc port>
 *                         Fastify with the gateway's plugins; POST /echo parses the balance body and
 *                         makes one unary call on one long-lived channel (the gateway's channel
 *                         options, a 2 s deadline, x-request-id metadata), answering its reply
 *   grpc-echo.ts lone <grpc port> <seconds> <warm-up seconds>
 *                         the same calls one at a time, as the lone bet calls the wallet; prints
 *                         `LONE {"count","p50","p99","max","avg"}` (ms) and exits
 *
 * server and front run as their own processes on 127.0.0.1 and print `READY <port>`.
 */
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import Fastify from 'fastify';
import helmet from '../../gateway/src/plugins/external/helmet.js';
import underPressure from '@fastify/under-pressure';
import { loneLatencies } from '../lib/load.js';

const PROTO = fileURLToPath(new URL('./echo.proto', import.meta.url));
const definition = protoLoader.loadSync(PROTO, {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});
const loaded = grpc.loadPackageDefinition(definition) as unknown as {
  bench: { v1: { Echo: grpc.ServiceClientConstructor } };
};
const Echo = loaded.bench.v1.Echo;

interface EchoRequest {
  user_id: string;
  currency: string;
  session_id?: string;
}

async function server(): Promise<void> {
  // The wallet's server options (wallet-service/src/wallet.ts).
  const grpcServer = new grpc.Server({ 'grpc.max_receive_message_length': 64 * 1024 });
  grpcServer.addService(Echo.service, {
    Echo: (call: grpc.ServerUnaryCall<EchoRequest, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      callback(null, { balance: '100.00', currency: call.request.currency });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    grpcServer.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    ),
  );
  console.log(`READY ${port}`);
  const stop = () => grpcServer.tryShutdown(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

function echoClient(grpcPort: string) {
  return new Echo(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure(), {
    'grpc.initial_reconnect_backoff_ms': 100,
    'grpc.max_reconnect_backoff_ms': 2000,
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 5_000,
    'grpc.enable_retries': 0,
    'grpc.enable_channelz': 0,
  });
}

type EchoCall = (
  request: EchoRequest,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (error: grpc.ServiceError | null, reply: unknown) => void,
) => void;

async function front(grpcPort: string): Promise<void> {
  const client = echoClient(grpcPort);
  const echo = client as unknown as { Echo: EchoCall };
  const app = Fastify({ logger: false, bodyLimit: 16 * 1024 });
  await app.register(helmet);
  await app.register(underPressure, { sampleInterval: 100, exposeStatusRoute: false });
  app.post('/echo', (request, reply) => {
    const body = request.body as EchoRequest;
    const metadata = new grpc.Metadata();
    metadata.set('x-request-id', randomUUID());
    echo.Echo(
      { user_id: body.user_id, currency: body.currency, session_id: body.session_id ?? '' },
      metadata,
      { deadline: new Date(Date.now() + 2000) },
      (error, answer) => {
        if (error) void reply.code(503).send({ error: 'unavailable', code: 'WALLET_UNAVAILABLE' });
        else void reply.type('application/json; charset=utf-8').send(JSON.stringify(answer));
      },
    );
    return reply;
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  console.log(`READY ${typeof address === 'object' && address !== null ? address.port : 0}`);
  const stop = () =>
    void app.close().then(() => {
      client.close();
      process.exit(0);
    });
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

/** One call at a time: the latency floor of one unary call between two processes here. */
async function lone(grpcPort: string, seconds: number, warmupS: number): Promise<void> {
  const client = echoClient(grpcPort);
  const echo = (client as unknown as { Echo: EchoCall }).Echo.bind(client);
  const call = () =>
    new Promise<void>((resolve, reject) => {
      const metadata = new grpc.Metadata();
      metadata.set('x-request-id', randomUUID());
      const request = { user_id: 'lone', currency: 'EUR', session_id: '' };
      echo(request, metadata, { deadline: new Date(Date.now() + 2000) }, (error) =>
        error ? reject(error) : resolve(),
      );
    });
  const latencies: number[] = [];
  const phase = async (durationS: number, record: boolean) => {
    const until = Date.now() + durationS * 1000;
    while (Date.now() < until) {
      const started = performance.now();
      await call();
      if (record) latencies.push(performance.now() - started);
    }
  };
  await phase(warmupS, false);
  await phase(seconds, true);
  client.close();
  // Counted as the lone bet is (bench/lib/lone-bet.ts), so that both sides compare.
  console.log(`LONE ${JSON.stringify(loneLatencies(latencies))}`);
}

const [role, port, seconds, warmup] = process.argv.slice(2);
if (role === 'server') await server();
else if (role === 'front' && port !== undefined) await front(port);
else if (role === 'lone' && port !== undefined) await lone(port, Number(seconds ?? 5), Number(warmup ?? 1));
else {
  console.error('usage: grpc-echo.ts server | front <grpc port> | lone <grpc port> <seconds> <warm-up seconds>');
  process.exit(2);
}
