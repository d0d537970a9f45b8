/**
 * Admission: one count of the PHIA requests in progress, and one rule. A request is admitted once its
 * body is read and authenticated (preHandler), so clients stalling in their bodies, or unauthenticated
 * ones, hold no place; it leaves the count on its response's 'close' event, which comes whether the
 * answer went out or the client went away first.
 *
 * Past CONNECTIONS_FACTOR x WALLET_MAX_IN_FLIGHT open connections, and while ADMISSION_FACTOR x
 * WALLET_MAX_IN_FLIGHT requests are in progress (full), new connections are refused at accept (the
 * server's maxConnections, before any JavaScript runs for them): requests queued in sockets the
 * gateway has not read yet wait in front of the event loop, unseen by any count, and their answers
 * would come too late however fast the gateway is once it reads them. While
 * full, or while the event loop is overloaded, new PHIA requests on open connections are refused
 * before any store or wallet work, as early as possible (onRequest, before the body is read; again in
 * preHandler for a burst that arrived together):
 * - a balance is answered 503 WALLET_UNAVAILABLE (it moves no money);
 * - a money request gets its connection closed without an answer. A 503 that is neither stored nor
 *   voided could let a later copy apply (rule 5); a closed connection is an error PHIA follows with a
 *   refund, which tombstones an unseen bet in the ledger.
 * Admitted requests past the wallet client's own bound (WALLET_MAX_IN_FLIGHT calls) are answered 503
 * there, stored and voided like any undecided error.
 *
 * Closing the app waits for the requests in progress before the wallet client and Redis close.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { errorAnswer } from '../../phia/contract.js';
import { JSON_TYPE } from '../../routes/phia.js';
import type { AppOptions } from './options.js';
import { routeConfig } from '../../route-config.js';

/** Requests in progress at most, per wallet call allowed in flight (the rest wait for Redis or settle). */
export const ADMISSION_FACTOR = 2;
/**
 * Open connections at most, per wallet call allowed in flight (512 by default): each holds at most one
 * request, so this bounds what can queue unread in front of the event loop. Room for PHIA's keep-alive
 * pools and for clients stalled in their bodies (which hold no place in the in-progress count).
 */
export const CONNECTIONS_FACTOR = 8;

declare module 'fastify' {
  interface FastifyInstance {
    admission: { readonly inProgress: number; readonly limit: number };
  }
}

const BALANCE_REFUSAL = JSON.stringify(errorAnswer('WALLET_UNAVAILABLE'));

export default fp<AppOptions>(
  async (app, { config }) => {
    const limit = ADMISSION_FACTOR * config.walletMaxInFlight;
    let inProgress = 0;
    let idle: (() => void) | undefined;
    app.decorate('admission', {
      get inProgress() {
        return inProgress;
      },
      limit,
    });
    const refusals = app.metrics.admissionRefusals;

    const refuse = (request: FastifyRequest, reply: FastifyReply) => {
      const action = routeConfig(request).action;
      if (action === 'balance') {
        refusals.inc({ action, answer: '503' });
        request.phia = { code: 'WALLET_UNAVAILABLE', action };
        return reply.code(503).type(JSON_TYPE).send(BALANCE_REFUSAL);
      }
      refusals.inc({ action: action ?? 'unknown', answer: 'closed' });
      reply.hijack();
      reply.raw.destroy();
      return reply;
    };
    const full = () => inProgress >= limit || app.overloaded();
    // Node accepts and closes at once a connection past maxConnections ('drop' event).
    const server = app.server;
    const OPEN = CONNECTIONS_FACTOR * config.walletMaxInFlight;
    server.maxConnections = OPEN;
    server.on('drop', () => refusals.inc({ action: 'unknown', answer: 'connection' }));

    // Callback hooks (no promise per request); a refused request's hook does not call done().
    app.addHook('onRequest', (request, reply, done) => {
      if (routeConfig(request).phia === true && full()) return void refuse(request, reply);
      done();
    });
    const leave = () => {
      if (inProgress-- === limit) server.maxConnections = OPEN;
      if (inProgress === 0) idle?.();
    };
    app.addHook('preHandler', (request, reply, done) => {
      // A request whose socket is already gone is not counted: its handler answers without any work.
      if (routeConfig(request).phia !== true || request.raw.socket?.destroyed === true) return done();
      if (full()) return void refuse(request, reply);
      if (++inProgress === limit) server.maxConnections = 1;
      reply.raw.once('close', leave);
      done();
    });

    app.addHook('onClose', async () => {
      if (inProgress === 0) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, config.walletDeadlineMs + 2000);
        idle = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    });
  },
  { name: 'admission', dependencies: ['metrics', 'under-pressure'] },
);
