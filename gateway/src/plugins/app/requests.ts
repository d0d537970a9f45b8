/**
 * What every request goes through around its route: the request id echoed back, PHIA's
 * authentication and exact JSON parser, the contract's error and not-found answers, and the one log
 * line (with the metrics) per PHIA request.
 */
import type { FastifyError } from 'fastify';
import fp from 'fastify-plugin';
import { isErrorCode, PhiaError, type ErrorCode } from '@phia/proto';
import { createPhiaAuth } from '../../auth/plugin.js';
import { installJsonParser } from '../../body/json-parser.js';
import { errorAnswer, httpStatusOf, NOT_FOUND_ANSWER } from '../../phia/contract.js';
import { JSON_TYPE } from '../../routes/phia.js';
import { WalletError } from '../../wallet-client/client.js';
import type { AppOptions } from './options.js';
import { routeConfig } from '../../route-config.js';

export default fp<AppOptions>(
  async (app, { config }) => {
    const { metrics } = app;
    // Callback hooks: no promise per request on the hot path.
    app.addHook('onRequest', (request, reply, done) => {
      reply.header('x-request-id', request.id);
      done();
    });

    const auth = createPhiaAuth(config);
    installJsonParser(app, { bodyLimit: config.bodyLimitBytes, onRawBody: auth.checkSignature });
    auth.install(app);

    app.setErrorHandler((error: FastifyError, request, reply) => {
      const code = errorCodeOf(error);
      if (code === 'INTERNAL') request.log.error({ err: error }, 'unexpected error');
      else request.log.debug({ code, detail: error instanceof PhiaError ? error.detail : error.message }, 'refused');
      if (request.phia !== undefined) request.phia.code = code;
      else if (routeConfig(request).phia === true) request.phia = { code };
      return reply
        .code(httpStatusOf(code))
        .type(JSON_TYPE)
        .send(JSON.stringify(errorAnswer(code)));
    });
    app.setNotFoundHandler((_request, reply) => reply.code(404).type(JSON_TYPE).send(JSON.stringify(NOT_FOUND_ANSWER)));

    // The one line per PHIA request holds only the fields below, none of them secret: it skips the
    // redaction pass, which clones every log object under the wildcard paths (logger.ts).
    const accessLog = app.log.child({}, { redact: [] });
    // Metric children by label values (a handful each): no label hashing per request.
    const counted = new Map<string, { inc(): void }>();
    const timed = new Map<string, { observe(seconds: number): void }>();
    app.addHook('onResponse', (request, reply, done) => {
      if (routeConfig(request).phia !== true) {
        request.log.debug({ url: request.url, status: reply.statusCode }, 'request');
        return done();
      }
      const info = request.phia;
      const action = info?.action ?? routeConfig(request).action ?? 'unknown';
      const code = info?.code ?? (reply.statusCode === 200 ? 'ok' : 'unknown');
      const status = String(reply.statusCode);
      const key = `${action} ${status} ${code}`;
      let counter = counted.get(key);
      if (counter === undefined) counted.set(key, (counter = metrics.requests.labels({ action, status, code })));
      counter.inc();
      let histogram = timed.get(action);
      if (histogram === undefined) timed.set(action, (histogram = metrics.requestDuration.labels({ action })));
      histogram.observe(reply.elapsedTime / 1000);
      accessLog.info(
        {
          reqId: request.id,
          action,
          tx_id: info?.tx_id,
          round_id: info?.round_id,
          status: reply.statusCode,
          code,
          replayed: info?.replayed === true ? true : undefined,
          client_ip: request.clientIp,
          duration_ms: Math.round(reply.elapsedTime * 10) / 10,
        },
        'phia request',
      );
      done();
    });
  },
  { name: 'requests', dependencies: ['metrics'] },
);

/** The contract code of any error reaching the error handler. */
export function errorCodeOf(error: FastifyError | Error): ErrorCode {
  if (error instanceof PhiaError || error instanceof WalletError) return error.code;
  const fastifyError = error as FastifyError;
  if (fastifyError.validation !== undefined) return 'INVALID_REQUEST';
  if (fastifyError.code === 'FST_ERR_CTP_BODY_TOO_LARGE' || fastifyError.statusCode === 413) return 'PAYLOAD_TOO_LARGE';
  if (fastifyError.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' || fastifyError.statusCode === 415) {
    return 'UNSUPPORTED_MEDIA_TYPE';
  }
  if (isErrorCode(fastifyError.code)) return fastifyError.code;
  const status = fastifyError.statusCode ?? 500;
  if (status >= 400 && status < 500) return 'INVALID_REQUEST';
  if (status === 503) return 'WALLET_UNAVAILABLE';
  return 'INTERNAL';
}
