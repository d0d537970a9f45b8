/** The wallet stopped before committing because the caller's deadline had passed or was too close. */
export class DeadlineExceededError extends Error {
  constructor(detail: string) {
    super(`deadline exceeded: ${detail}`);
    this.name = 'DeadlineExceededError';
  }
}

/** The database could not be reached or the connection died: nothing was committed by this call. */
export class DatabaseUnavailableError extends Error {
  constructor(cause: unknown) {
    super('database unavailable', { cause });
    this.name = 'DatabaseUnavailableError';
  }
}
