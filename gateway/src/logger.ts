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

/** At most this long between a log line and its write to stdout, however quiet the gateway is. */
export const LOG_FLUSH_INTERVAL_MS = 1000;

/**
 * Without a destination: stdout, written asynchronously in chunks of at least 8 KiB (one synchronous
 * write per log line cost about 3% of the gateway's CPU under load). The app flushes the buffer every
 * LOG_FLUSH_INTERVAL_MS and when it closes (`logger.flush()`); pino's exit handler flushes it when the
 * process exits.
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { service: 'phia-gateway' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
  };
  return pino(options, destination ?? pino.destination({ dest: 1, sync: false, minLength: 8 * 1024 }));
}
