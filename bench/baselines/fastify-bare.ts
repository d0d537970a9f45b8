/**
 * Baseline: a bare Fastify route with the gateway's external plugins, as the gateway registers them
 * (helmet's default headers, computed once; @fastify/under-pressure sampling only), Fastify's own JSON parser, no logging, answering a fixed
 * JSON body. Run as its own process; prints `READY <port>` once listening on 127.0.0.1.
 */
import Fastify from 'fastify';
import helmet from '../../gateway/src/plugins/external/helmet.js';
import underPressure from '@fastify/under-pressure';

const ANSWER = JSON.stringify({ balance: '100.00', currency: 'USD', tx_id: 'bench-fixed-tx' });

const app = Fastify({ logger: false, bodyLimit: 16 * 1024 });
await app.register(helmet);
await app.register(underPressure, { sampleInterval: 100, exposeStatusRoute: false });
app.post('/bare', async (_request, reply) => reply.type('application/json; charset=utf-8').send(ANSWER));
await app.listen({ host: '127.0.0.1', port: 0 });
const address = app.server.address();
console.log(`READY ${typeof address === 'object' && address !== null ? address.port : 0}`);

const stop = () => void app.close().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
