/**
 * Baseline: a bare Fastify route with the gateway's plugins (@fastify/helmet with its defaults,
 * @fastify/under-pressure measuring only), Fastify's own JSON parser, no logging, answering a fixed
 * JSON body. Run as its own process; prints `READY <port>` once listening on 127.0.0.1.
 */
import Fastify from 'fastify';
import helmet from '@fastify/helmet';
import underPressure from '@fastify/under-pressure';

const ANSWER = JSON.stringify({ balance: '100.00', currency: 'USD', tx_id: 'bench-fixed-tx' });

const app = Fastify({ logger: false, bodyLimit: 16 * 1024 });
await app.register(helmet, { global: true });
await app.register(underPressure, {
  maxEventLoopDelay: 1000,
  exposeStatusRoute: false,
  pressureHandler: () => undefined,
});
app.post('/bare', async (_request, reply) => reply.type('application/json; charset=utf-8').send(ANSWER));
await app.listen({ host: '127.0.0.1', port: 0 });
const address = app.server.address();
console.log(`READY ${typeof address === 'object' && address !== null ? address.port : 0}`);

const stop = () => void app.close().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
