/**
 * The PHIA endpoints (contract section 2): `POST /phia/{balance,bet,win,refund}` and `POST /phia`
 * with `action`. Each route declares its body and answer schemas (the bodies typed by them); the
 * work is the processor's.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { PhiaError, type MoneyKind } from '@phia/proto';
import {
  ACTION_ENDPOINTS,
  ACTION_FIELD,
  answerSchema,
  BalanceBody,
  BetBody,
  errorAnswer,
  fieldTooLong,
  RefundBody,
  SINGLE_ENDPOINT,
  WinBody,
  type Action,
  type BalanceBodyT,
  type MoneyBodyT,
} from '../phia/contract.js';
import type { Answer } from '../phia/processor.js';

/** What the one log line per request reports (set by the handler, read in onResponse). */
export interface PhiaRequestInfo {
  action?: Action;
  tx_id?: string;
  round_id?: string;
  code?: string;
  replayed?: boolean;
}

declare module 'fastify' {
  interface FastifyRequest {
    phia?: PhiaRequestInfo;
  }
  interface FastifyContextConfig {
    /** A PHIA endpoint: authenticated, logged and counted as such. */
    phia?: boolean;
    /** The action of a per-action endpoint. */
    action?: Action;
  }
}

export const JSON_TYPE = 'application/json; charset=utf-8';

const CLIENT_GONE_ANSWER = JSON.stringify(errorAnswer('WALLET_UNAVAILABLE'));

export function sendAnswer(reply: FastifyReply, answer: Answer): FastifyReply {
  if (answer.replayed) reply.header('idempotent-replayed', 'true');
  return reply.code(answer.status).type(JSON_TYPE).send(answer.body);
}

/** The single endpoint: `action` is required and picks one of the four bodies. */
const withAction = <A extends Action>(action: A) => Type.Object({ [ACTION_FIELD]: Type.Literal(action) });
const SingleEndpointBody = Type.Union([
  Type.Intersect([BalanceBody, withAction('balance')]),
  Type.Intersect([BetBody, withAction('bet')]),
  Type.Intersect([WinBody, withAction('win')]),
  Type.Intersect([RefundBody, withAction('refund')]),
]);

type PhiaBody = { action: 'balance'; body: BalanceBodyT } | { action: MoneyKind; body: MoneyBodyT };

const phiaRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { processor } = app;

  const handle = async ({ action, body }: PhiaBody, request: FastifyRequest, reply: FastifyReply) => {
    const tooLong = fieldTooLong(action, body);
    if (tooLong !== undefined) throw new PhiaError('INVALID_REQUEST', `${tooLong} longer than the wallet stores`);
    const info: PhiaRequestInfo = { action };
    request.phia = info;
    if (request.raw.socket?.destroyed === true) {
      // The client is gone (it gave up while the request waited in a busy gateway's queues): nobody
      // can receive an answer, so nothing is done, neither in the store nor in the wallet.
      info.code = 'CLIENT_GONE';
      return reply.code(503).type(JSON_TYPE).send(CLIENT_GONE_ANSWER);
    }
    // Fastify's start of this request (reply.elapsedTime counts from it): the deadline counts from here.
    // Whole milliseconds (elapsedTime has a fraction), rounded down so the deadline is never later.
    const ctx = { requestId: request.id, log: request.log, arrivedAt: Math.floor(Date.now() - reply.elapsedTime) };
    let answer: Answer;
    if (action === 'balance') {
      answer = await processor.balance(body, ctx);
    } else {
      info.tx_id = body.tx_id;
      info.round_id = body.round_id;
      answer = await processor.money(action, body, ctx);
    }
    info.code = answer.code;
    info.replayed = answer.replayed;
    return sendAnswer(reply, answer);
  };

  const route = { phia: true } as const;
  app.post(
    ACTION_ENDPOINTS.balance,
    { schema: { body: BalanceBody, response: answerSchema('balance') }, config: { ...route, action: 'balance' } },
    (request, reply) => handle({ action: 'balance', body: request.body }, request, reply),
  );
  for (const [action, schema] of [
    ['bet', BetBody],
    ['win', WinBody],
    ['refund', RefundBody],
  ] as const) {
    app.post(
      ACTION_ENDPOINTS[action],
      { schema: { body: schema, response: answerSchema(action) }, config: { ...route, action } },
      (request, reply) => handle({ action, body: request.body }, request, reply),
    );
  }
  app.post(
    SINGLE_ENDPOINT,
    { schema: { body: SingleEndpointBody, response: answerSchema('any') }, config: route },
    (request, reply) => {
      const body = request.body;
      return handle(
        body.action === 'balance' ? { action: 'balance', body } : { action: body.action, body },
        request,
        reply,
      );
    },
  );
};

export default phiaRoutes;
