/**
 * Security headers on every answer: helmet's defaults, computed once at start-up by helmet's own
 * middleware against a recording response, then copied onto each reply. @fastify/helmet runs that
 * middleware on every request, rebuilding and checking the same Content-Security-Policy string each
 * time (2 to 4% of the gateway's CPU per request in the profiles, BENCHMARKS.md).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import fp from 'fastify-plugin';
import helmet, { type HelmetOptions } from 'helmet';

/** The headers helmet's middleware sets with `options`, lower-cased, as one frozen object. */
export function helmetHeaders(options?: Readonly<HelmetOptions>): Readonly<Record<string, string>> {
  const headers: Record<string, string> = {};
  const recorder = {
    setHeader(name: string, value: string | number | readonly string[]) {
      headers[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : String(value);
    },
    removeHeader(name: string) {
      delete headers[name.toLowerCase()];
    },
  };
  let failure: unknown;
  // helmet's middleware chain is synchronous: `next` has run when it returns.
  helmet(options)({} as IncomingMessage, recorder as unknown as ServerResponse, (error?: unknown) => {
    failure = error;
  });
  if (failure !== undefined) throw failure instanceof Error ? failure : new Error(String(failure));
  return Object.freeze(headers);
}

export default fp(
  async (app) => {
    const headers = helmetHeaders();
    // Errors, 404s and refused requests get them too: this hook runs first for every request.
    app.addHook('onRequest', (_request, reply, done) => {
      reply.headers(headers);
      done();
    });
  },
  { name: 'helmet' },
);
