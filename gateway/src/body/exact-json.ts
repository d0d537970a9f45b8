/**
 * A strict JSON reader for money: every bare JSON number comes out as its exact source text (a
 * string), so `12.50` is never a float. It also refuses what JSON.parse silently accepts and a
 * ledger should not: duplicated keys (which one wins?), prototype-pollution keys, absurd nesting.
 *
 * It is a single scan that checks the structure and copies the text with quotes added around number
 * tokens; JSON.parse then does the final decoding of the (now number-free) text.
 */
import { PhiaError } from '@phia/proto';

export interface ExactJsonOptions {
  /** Deepest allowed nesting of objects and arrays; the top-level value is depth 1. */
  maxDepth?: number;
  /**
   * Keys whose bare number values become their exact source text (e.g. `amount`). Every other number
   * stays a JSON number, so a number is never mistaken for a string field (`"tx_id": 5`). Default:
   * every number becomes text.
   */
  exactNumberKeys?: ReadonlySet<string>;
}

export const DEFAULT_MAX_DEPTH = 16;
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
// eslint-disable-next-line no-control-regex -- JSON forbids raw control characters in strings
const STRING_BODY = /(?:[^"\\\u0000-\u001f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"/y;
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

function invalid(detail: string): PhiaError {
  return new PhiaError('INVALID_REQUEST', detail);
}

/** Decodes UTF-8 bytes (refusing malformed sequences) and parses them exactly. */
export function parseExactJsonBuffer(raw: Buffer, options?: ExactJsonOptions): unknown {
  let text: string;
  try {
    text = decoder.decode(raw);
  } catch {
    throw invalid('body is not valid UTF-8');
  }
  return parseExactJson(text, options);
}

export function parseExactJson(text: string, options: ExactJsonOptions = {}): unknown {
  const maxDepth = options.maxDepth ?? DEFAULT_MAX_DEPTH;
  const exactKeys = options.exactNumberKeys;
  const out: string[] = [];
  let pos = 0;
  let copiedTo = 0;

  const skipWhitespace = (): void => {
    while (pos < text.length) {
      const c = text.charCodeAt(pos);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) pos++;
      else break;
    }
  };

  /** Scans a string token starting at pos (on the opening quote); returns its source slice. */
  const scanString = (): string => {
    const start = pos;
    STRING_BODY.lastIndex = pos + 1;
    if (!STRING_BODY.test(text)) throw invalid(`malformed string at ${start}`);
    pos = STRING_BODY.lastIndex;
    return text.slice(start, pos);
  };

  /** `key`: the object key this value belongs to (undefined for array items and the top level). */
  const scanValue = (depth: number, key?: string): void => {
    skipWhitespace();
    if (pos >= text.length) throw invalid('unexpected end of JSON');
    const c = text[pos];
    if (c === '{' || c === '[') {
      if (depth > maxDepth) throw invalid(`nesting deeper than ${maxDepth}`);
      pos++;
      if (c === '{') scanObject(depth);
      else scanArray(depth);
    } else if (c === '"') {
      scanString();
    } else if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) {
      NUMBER.lastIndex = pos;
      const match = NUMBER.exec(text);
      if (!match) throw invalid(`malformed number at ${pos}`);
      pos += match[0].length;
      if (exactKeys === undefined || (key !== undefined && exactKeys.has(key))) {
        // Copy what precedes the number, then the number as a string token.
        out.push(text.slice(copiedTo, pos - match[0].length), '"', match[0], '"');
        copiedTo = pos;
      }
    } else if (text.startsWith('true', pos)) {
      pos += 4;
    } else if (text.startsWith('false', pos)) {
      pos += 5;
    } else if (text.startsWith('null', pos)) {
      pos += 4;
    } else {
      throw invalid(`unexpected character at ${pos}`);
    }
  };

  const scanObject = (depth: number): void => {
    const keys = new Set<string>();
    skipWhitespace();
    if (text[pos] === '}') {
      pos++;
      return;
    }
    for (;;) {
      skipWhitespace();
      if (text[pos] !== '"') throw invalid(`expected a key at ${pos}`);
      const key = JSON.parse(scanString()) as string;
      if (FORBIDDEN_KEYS.has(key)) throw invalid(`forbidden key "${key}"`);
      if (keys.has(key)) throw invalid(`duplicated key "${key}"`);
      keys.add(key);
      skipWhitespace();
      if (text[pos] !== ':') throw invalid(`expected ':' at ${pos}`);
      pos++;
      scanValue(depth + 1, key);
      skipWhitespace();
      if (text[pos] === ',') {
        pos++;
      } else if (text[pos] === '}') {
        pos++;
        return;
      } else {
        throw invalid(`expected ',' or '}' at ${pos}`);
      }
    }
  };

  const scanArray = (depth: number): void => {
    skipWhitespace();
    if (text[pos] === ']') {
      pos++;
      return;
    }
    for (;;) {
      scanValue(depth + 1);
      skipWhitespace();
      if (text[pos] === ',') {
        pos++;
      } else if (text[pos] === ']') {
        pos++;
        return;
      } else {
        throw invalid(`expected ',' or ']' at ${pos}`);
      }
    }
  };

  scanValue(1);
  skipWhitespace();
  if (pos !== text.length) throw invalid(`unexpected data after the JSON value at ${pos}`);
  out.push(text.slice(copiedTo));
  let value: unknown;
  try {
    value = JSON.parse(out.join(''));
  } catch {
    throw invalid('malformed JSON');
  }
  checkStrings(value);
  return value;
}

/** NUL, and halves of surrogate pairs, which no database column should ever receive. */
// eslint-disable-next-line no-control-regex -- NUL is exactly what this looks for
const UNSTORABLE = /\u0000|\p{Cs}/u;

/** Refuses strings (keys and values) that escapes made unstorable: `\u0000`, lone `\ud800`. */
function checkStrings(value: unknown): void {
  if (typeof value === 'string') {
    if (UNSTORABLE.test(value)) throw invalid('string with NUL or a lone surrogate');
  } else if (Array.isArray(value)) {
    for (const item of value) checkStrings(item);
  } else if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      if (UNSTORABLE.test(key)) throw invalid('key with NUL or a lone surrogate');
      checkStrings(item);
    }
  }
}
