/**
 * The gateway's only body parser: `application/json` (any parameters), read as a Buffer up to the
 * body limit. The raw bytes are kept on the request (the signature is computed over them, never over
 * re-serialized JSON) and handed to `onRawBody` before any parsing, so an unsigned request is refused
 * as unauthorized before its content is even looked at. Every other content type gets 415.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { PhiaError } from '@phia/proto';
import { EXACT_NUMBER_FIELDS } from '../phia/contract.js';
import { parseExactJsonBuffer, DEFAULT_MAX_DEPTH } from './exact-json.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The body bytes exactly as received (set by the JSON parser). */
    rawBody?: Buffer;
  }
}

export interface JsonParserOptions {
  bodyLimit: number;
  maxDepth?: number;
  /** Called with the raw bytes before parsing; throw to refuse the request (e.g. a bad signature). */
  onRawBody?: (request: FastifyRequest, raw: Buffer) => void;
}

export function installJsonParser(app: FastifyInstance, options: JsonParserOptions): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(
    'application/json',
    { parseAs: 'buffer', bodyLimit: options.bodyLimit },
    (request, body, done) => {
      const raw = body as Buffer;
      request.rawBody = raw;
      try {
        options.onRawBody?.(request, raw);
        if (raw.length === 0) throw new PhiaError('INVALID_REQUEST', 'empty body');
        const maxDepth = options.maxDepth ?? DEFAULT_MAX_DEPTH;
        done(null, parseExactJsonBuffer(raw, { maxDepth, exactNumberKeys: EXACT_NUMBER_FIELDS }));
      } catch (error) {
        done(error as Error, undefined);
      }
    },
  );
}
