/**
 * A request's route config (`phia`, `action`), read once per request: Fastify's `request.routeOptions`
 * builds a new object on every access, and the PHIA hooks ask for it several times per request.
 */
import type { FastifyContextConfig, FastifyInstance, FastifyRequest } from 'fastify';

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by routeConfig(); null until then. */
    routeConfig: FastifyContextConfig | null;
  }
}

export function decorateRouteConfig(app: FastifyInstance): void {
  if (!app.hasRequestDecorator('routeConfig')) app.decorateRequest('routeConfig', null);
}

export function routeConfig(request: FastifyRequest): FastifyContextConfig {
  return (request.routeConfig ??= request.routeOptions.config);
}
