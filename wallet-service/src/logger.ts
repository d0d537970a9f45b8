import pino, { type Logger } from 'pino';

/** pino with secrets redacted: connection strings carry passwords. */
export function createLogger(level: string): Logger {
  return pino({
    level,
    name: 'wallet',
    redact: {
      paths: ['databaseUrl', 'config.databaseUrl', '*.password', 'password', 'DATABASE_URL', 'env.DATABASE_URL'],
      censor: '[redacted]',
    },
  });
}

/** A connection string fit for a log line: the password replaced. */
export function describeDatabaseUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = 'redacted';
    return parsed.toString();
  } catch {
    return '[unparseable url]';
  }
}
