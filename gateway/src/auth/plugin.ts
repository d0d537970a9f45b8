/**
 * Wires the PHIA checks into Fastify for routes marked `config.phia`:
 *   onRequest:  IP allowlist (403 IP_NOT_ALLOWED) in `ip` and `signature+ip` modes, before the body is read;
 *   body parser: signature over the raw bytes (401 INVALID_SIGNATURE) before the JSON is parsed;
 *   preValidation: signature of a request that had no body for the parser to see.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { PhiaError } from '@phia/proto';
import type { GatewayConfig } from '../config.js';
import { SIGNATURE_HEADER } from '../phia/contract.js';
import { clientAddress, IpMatcher } from './ip.js';
import { SignatureVerifier } from './signature.js';
import { routeConfig } from '../route-config.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The address the allowlist judged (peer, or the forwarded client behind a trusted proxy). */
    clientIp?: string;
    signatureChecked?: boolean;
  }
}

export interface PhiaAuth {
  /** For the body parser: throws INVALID_SIGNATURE when the raw bytes are not signed by a known key. */
  checkSignature(request: FastifyRequest, raw: Buffer): void;
  install(app: FastifyInstance): void;
}

export function createPhiaAuth(
  config: Pick<GatewayConfig, 'authMode' | 'signingKeys' | 'allowedIps' | 'trustProxy'>,
): PhiaAuth {
  const wantsSignature = config.authMode !== 'ip';
  const wantsIp = config.authMode !== 'signature';
  const verifier = wantsSignature ? new SignatureVerifier(config.signingKeys) : undefined;
  const allowed = new IpMatcher(config.allowedIps);
  const trusted = new IpMatcher(config.trustProxy);

  const checkSignature = (request: FastifyRequest, raw: Buffer): void => {
    if (verifier === undefined || routeConfig(request).phia !== true) return;
    request.signatureChecked = true;
    if (!verifier.verify(raw, request.headers[SIGNATURE_HEADER])) {
      throw new PhiaError(
        'INVALID_SIGNATURE',
        request.headers[SIGNATURE_HEADER] ? 'signature mismatch' : 'no signature',
      );
    }
  };

  return {
    checkSignature,
    install(app) {
      // Callback hooks: no promise per request on the hot path.
      app.addHook('onRequest', (request, _reply, done) => {
        if (routeConfig(request).phia !== true) return done();
        request.clientIp = clientAddress(request.socket.remoteAddress, request.headers['x-forwarded-for'], trusted);
        if (wantsIp && !allowed.has(request.clientIp)) {
          return done(new PhiaError('IP_NOT_ALLOWED', `address ${request.clientIp ?? 'unknown'}`));
        }
        done();
      });
      app.addHook('preValidation', (request, _reply, done) => {
        if (routeConfig(request).phia !== true || request.signatureChecked === true) return done();
        try {
          checkSignature(request, request.rawBody ?? Buffer.alloc(0));
        } catch (error) {
          return done(error as Error);
        }
        done();
      });
    },
  };
}
