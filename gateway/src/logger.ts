/**
 * The gateway's pino logger. The signature header, signing keys and session tokens are redacted
 * wherever they might end up in a log object.
 */
import { pino, type DestinationStream, type Logger } from 'pino';

export const REDACT_PATHS = [
  'req.headers["x-request-sign"]',
  'req.headers.authorization',
  'req.headers.cookie',
  'headers["x-request-sign"]',
  'signingKeys',
  'generatedDevKey',
  'config.signingKeys',
  'config.generatedDevKey',
  'session_id',
  'body.session_id',
  '*.session_id',
  'token',
  '*.token',
];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { service: 'phia-gateway' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
  };
  return destination === undefined ? pino(options) : pino(options, destination);
}
