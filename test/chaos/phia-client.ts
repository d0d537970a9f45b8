/** Signed PHIA requests over HTTP, as PHIA sends them: POST, JSON, `X-REQUEST-SIGN` over the raw body. */
import { createHmac } from 'node:crypto';

export function sign(key: string, body: string): string {
  return createHmac('sha256', key).update(body).digest('hex');
}

/** What came back: a status and body, or nothing (connection refused or cut, or no answer in time). */
export interface Reply {
  status: number | undefined;
  body: string;
  /** Why there was no answer. */
  error?: string;
  /** The connection was refused: the request never reached a gateway. */
  refused: boolean;
  ms: number;
}

export async function post(url: string, body: string, signature: string, timeoutMs: number): Promise<Reply> {
  const started = performance.now();
  try {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-sign': signature },
      body,
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await response.text();
    return { status: response.status, body: text, refused: false, ms: performance.now() - started };
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    const code = cause?.code ?? (error as Error).name;
    return {
      status: undefined,
      body: '',
      error: `${code}: ${cause?.message ?? (error as Error).message}`,
      refused: code === 'ECONNREFUSED',
      ms: performance.now() - started,
    };
  }
}

/** The contract code of an error answer ('' for 200 or an unreadable body). */
export function codeOf(reply: { status: number | undefined; body: string }): string {
  if (reply.status === undefined || reply.status === 200) return '';
  try {
    const parsed = JSON.parse(reply.body) as { code?: unknown };
    return typeof parsed.code === 'string' ? parsed.code : '';
  } catch {
    return '';
  }
}

/** `phia_pending_voids` of a gateway's /metrics text, for one backend or all; NaN when absent. */
export function pendingVoidsIn(metrics: string, backend?: 'redis' | 'memory'): number {
  const lines = [...metrics.matchAll(/^phia_pending_voids\{backend="(\w+)"\} (\d+)$/gm)];
  const counted = lines.filter((line) => backend === undefined || line[1] === backend);
  return counted.length === 0 ? NaN : counted.reduce((sum, line) => sum + Number(line[2]), 0);
}
