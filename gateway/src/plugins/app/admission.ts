/**
 * Admission: one count of the PHIA requests in progress, and one rule. A request is admitted once its
 * body is read and authenticated (preHandler), so clients stalling in their bodies, or unauthenticated
 * ones, hold no place; it leaves the count on its response's 'close' event, which comes whether the
 * answer went out or the client went away first.
 *
 * While ADMISSION_FACTOR x WALLET_MAX_IN_FLIGHT requests are in progress (full), the listener is
 * closed, so the kernel refuses new connections at once and resets those waiting in its accept queue;
 * it listens again on the same address when a place frees (A1 in docs/idempotency.md). Past
 * CONNECTIONS_FACTOR x WALLET_MAX_IN_FLIGHT open connections a new one is closed at accept (the
 * server's maxConnections, before any JavaScript runs for it). Connections the gateway has not
 * accepted, and requests in sockets it has not read, wait in front of the event loop unseen by any
 * count: on a busy gateway for seconds, and their answers would come too late. While
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
import { Server, type AddressInfo } from 'node:net';
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
/**
 * The listener's accept queue (capped by net.core.somaxconn): under a burst of new connections a short
 * one drops handshakes, and those clients wait seconds for TCP retransmits before being served.
 */
export const LISTEN_BACKLOG = 4096;

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
    // While full the listener is closed (A1). net's close, not http's: http's also closes idle
    // keep-alive connections; open connections stay as they are. A gateway on several addresses (a
    // host name such as localhost: Fastify's secondary servers close with the main one) caps its
    // connections instead, closing new ones at accept.
    let listener: 'open' | 'closed' | 'reopening' | 'capped' = 'open';
    let closedAt: AddressInfo | undefined;
    let shuttingDown = false;
    const stopListening = () => {
      const address = server.address();
      if (listener !== 'open' || address === null || typeof address === 'string') return;
      if (app.addresses().length > 1) {
        listener = 'capped';
        server.maxConnections = 1;
        return;
      }
      listener = 'closed';
      closedAt = address;
      Server.prototype.close.call(server);
    };
    const listenAgain = () => {
      if (listener === 'capped') {
        listener = 'open';
        server.maxConnections = OPEN;
      }
      if (listener !== 'closed' || closedAt === undefined || shuttingDown) return;
      listener = 'reopening';
      const failed = (error: Error) => {
        // The port was taken meanwhile: keep trying, serving the open connections.
        listener = 'closed';
        app.log.error({ err: error }, 'the gateway could not listen again after being full; retrying');
        setTimeout(listenAgain, 100).unref();
      };
      server.once('error', failed);
      server.listen({ host: closedAt.address, port: closedAt.port, backlog: LISTEN_BACKLOG }, () => {
        server.removeListener('error', failed);
        listener = 'open';
        if (shuttingDown) Server.prototype.close.call(server);
        else if (inProgress >= limit) stopListening(); // full again meanwhile
      });
    };
    const leave = () => {
      if (inProgress-- === limit) listenAgain();
      if (inProgress === 0) idle?.();
    };
    app.addHook('preHandler', (request, reply, done) => {
      // A request whose socket is already gone is not counted: its handler answers without any work.
      if (routeConfig(request).phia !== true || request.raw.socket?.destroyed === true) return done();
      if (full()) return void refuse(request, reply);
      if (++inProgress === limit) stopListening();
      reply.raw.once('close', leave);
      done();
    });

    app.addHook('preClose', (done) => {
      shuttingDown = true;
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
