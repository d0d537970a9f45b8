/**
 * What one money request costs in round trips, against the real wallet and Redis: a bet is at most one
 * Redis round trip before its wallet call and one after, one gRPC call and one log line; a replay is
 * one Redis round trip and one log line, and no wallet call.
 */
import t from 'tap';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { createLogger } from '../../gateway/src/logger.js';
import { post, uid } from '../../gateway/src/test-helpers/index.js';
import { moneyBody, startStack } from '../helpers/gateway-stack.js';

const stack = await startStack({ label: 'gw_hot' });
t.teardown(() => stack.close());

const lines: Record<string, unknown>[] = [];
const app = await stack.newApp({
  logger: createLogger('info', {
    write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>),
  }) as FastifyBaseLogger,
});

// The void queue's drain loop polls Redis in the background: stopped, so only requests' commands remain.
await app.voids.close(0);

/** Every command the app sends to Redis, in order, with the wallet calls made between them. */
const trace: string[] = [];
const redis = app.redis;
if (redis === undefined) throw new Error('the stack has Redis');
const send = redis.sendCommand.bind(redis);
redis.sendCommand = ((command: { name: string }, stream?: unknown) => {
  trace.push(`redis ${command.name}`);
  return send(command as never, stream as never);
}) as typeof redis.sendCommand;
const call = app.wallet.money.bind(app.wallet);
app.wallet.money = (method, request, options) => {
  trace.push(`wallet ${method}`);
  return call(method, request, options);
};
const other = app.wallet.call.bind(app.wallet);
app.wallet.call = ((method: string, request: unknown, options: unknown) => {
  trace.push(`wallet ${method}`);
  return other(method as never, request as never, options as never);
}) as typeof app.wallet.call;

async function measure(fn: (app: FastifyInstance) => Promise<unknown>) {
  trace.length = 0;
  lines.length = 0;
  await fn(app);
  // The one log line is written in onResponse, after the answer went out.
  await new Promise((resolve) => setTimeout(resolve, 50));
  return { trace: [...trace], logLines: lines.filter((line) => line.msg !== undefined).length };
}

t.test('a bet: one Redis round trip before the wallet call, one after, one gRPC call, one log line', async (t) => {
  const user = uid('hot');
  await stack.fund(user, 'USD', '10');
  const bet = moneyBody({ user_id: user, amount: '1' });
  const first = await measure((app) => post(app, '/phia/bet', bet));
  const walletAt = first.trace.indexOf('wallet Bet');
  t.equal(first.trace.filter((entry) => entry.startsWith('wallet')).length, 1, `one wallet call: ${first.trace}`);
  t.ok(walletAt <= 1, `at most one Redis command before it: ${first.trace}`);
  t.ok(first.trace.length - walletAt - 1 <= 1, `at most one after it: ${first.trace}`);
  t.equal(first.logLines, 1, 'one log line');

  const replay = await measure((app) => post(app, '/phia/bet', bet));
  t.same(
    replay.trace.filter((entry) => entry.startsWith('wallet')),
    [],
    'a replay never reaches the wallet',
  );
  t.equal(replay.trace.length, 1, `a replay is one Redis round trip: ${replay.trace}`);
  t.equal(replay.logLines, 1, 'one log line');
});
