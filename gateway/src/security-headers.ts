/**
 * The security headers of every gateway answer: exactly those of helmet's defaults (@fastify/helmet
 * 13 / helmet 8, `global: true`), computed once here instead of by helmet's middleware chain on every
 * request (it rebuilt the Content-Security-Policy string and checked each header per request: about 5
 * to 7% of the gateway's CPU per replay, BENCHMARKS.md). `security-headers.test.ts` checks that they
 * are still helmet's defaults.
 */
import type { FastifyInstance } from 'fastify';

export const SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-security-policy':
    "default-src 'self';base-uri 'self';font-src 'self' https: data:;form-action 'self';frame-ancestors 'self';" +
    "img-src 'self' data:;object-src 'none';script-src 'self';script-src-attr 'none';" +
    "style-src 'self' https: 'unsafe-inline';upgrade-insecure-requests",
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'origin-agent-cluster': '?1',
  'referrer-policy': 'no-referrer',
  'strict-transport-security': 'max-age=31536000; includeSubDomains',
  'x-content-type-options': 'nosniff',
  'x-dns-prefetch-control': 'off',
  'x-download-options': 'noopen',
  'x-frame-options': 'SAMEORIGIN',
  'x-permitted-cross-domain-policies': 'none',
  'x-xss-protection': '0',
});

/**
 * Sets SECURITY_HEADERS and `x-request-id` on every answer, in one hook that runs first (errors,
 * 404s and shed requests included, as helmet's did).
 */
export function installSecurityHeaders(app: FastifyInstance): void {
  app.addHook('onRequest', (request, reply, done) => {
    reply.headers(SECURITY_HEADERS);
    reply.header('x-request-id', request.id);
    done();
  });
}
