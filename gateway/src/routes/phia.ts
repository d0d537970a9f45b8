/**
 * The PHIA endpoints (contract section 2): `POST /phia/{balance,bet,win,refund}` and `POST /phia`
 * with `action`. Each route declares its body and answer schemas; the work is the processor's.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { PhiaError, type MoneyKind } from '@phia/proto';
import {
  ACTION_ENDPOINTS,
  ACTION_FIELD,
  ACTIONS,
  answerSchema,
  BODY_SCHEMA,
  fieldTooLong,
  errorAnswer,
  isAction,
  SINGLE_ENDPOINT,
  SingleEndpointBody,
  type Action,
  type BalanceBodyT,
  type MoneyBodyT,
} from '../phia/contract.js';
import type { Answer, PhiaProcessor } from '../phia/processor.js';

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

export function sendAnswer(reply: FastifyReply, answer: Answer): FastifyReply {
  if (answer.replayed) reply.header('idempotent-replayed', 'true');
  return reply.code(answer.status).type(JSON_TYPE).send(answer.body);
}

export function registerPhiaRoutes(app: FastifyInstance, processor: PhiaProcessor): void {
  const handle = async (action: Action, request: FastifyRequest, reply: FastifyReply) => {
    const body = request.body as Record<string, unknown>;
    const tooLong = fieldTooLong(action, body);
    if (tooLong !== undefined) throw new PhiaError('INVALID_REQUEST', `${tooLong} longer than the wallet stores`);
    const info: PhiaRequestInfo = { action };
    request.phia = info;
    if (request.raw.socket?.destroyed === true) {
      // The client is gone (it gave up while the request waited in a busy gateway's queues): nobody
      // can receive an answer, so nothing is done, neither in the store nor in the wallet.
      info.code = 'CLIENT_GONE';
      return reply
        .code(503)
        .type(JSON_TYPE)
        .send(JSON.stringify(errorAnswer('WALLET_UNAVAILABLE')));
    }
    if (typeof body.tx_id === 'string') info.tx_id = body.tx_id;
    if (typeof body.round_id === 'string') info.round_id = body.round_id;
    // Fastify's start of this request (reply.elapsedTime counts from it): the deadline counts from here.
    // Whole milliseconds (elapsedTime has a fraction), rounded down so the deadline is never later.
    const ctx = { requestId: request.id, log: request.log, arrivedAt: Math.floor(Date.now() - reply.elapsedTime) };
    const answer =
      action === 'balance'
        ? await processor.balance(body as BalanceBodyT, ctx)
        : await processor.money(action as MoneyKind, body as MoneyBodyT, ctx);
    info.code = answer.code;
    info.replayed = answer.replayed;
    return sendAnswer(reply, answer);
  };

  for (const action of ACTIONS) {
    app.post(
      ACTION_ENDPOINTS[action],
      { schema: { body: BODY_SCHEMA[action], response: answerSchema(action) }, config: { phia: true, action } },
      (request, reply) => handle(action, request, reply),
    );
  }

  app.post(
    SINGLE_ENDPOINT,
    { schema: { body: SingleEndpointBody, response: answerSchema('any') }, config: { phia: true } },
    (request, reply) => {
      const action = (request.body as Record<string, unknown>)[ACTION_FIELD];
      // The schema already refused any other value; this narrows the type.
      if (!isAction(action)) throw new Error('unreachable: action passed the schema');
      return handle(action, request, reply);
    },
  );
}
