import { createHash } from 'node:crypto';
import type { Headers } from '../../core/message.js';

/**
 * The proxy refuses property names and values with control characters (Java's
 * `Character.isISOControl`), message keys that are blank or carry them, and message groups that
 * do too or are longer than 64 characters. mqkit headers may hold any string (a dead-letter's
 * error message has newlines), so such values travel percent-encoded and are decoded on receipt.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is matched
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is matched
const TO_ENCODE = /[\u0000-\u001f\u007f-\u009f%]/g;

/** Marker property: a JSON array of the names whose values are percent-encoded. */
export const ENCODED_VALUES = 'mq-enc';
/** Prefix of a property whose name (and value) is percent-encoded. Application headers never start with `mq-`. */
const ENCODED_NAME = 'mq-enc.';

/** The proxy's `maxMessageGroupSize`. */
const MAX_GROUP_CHARS = 64;

const pct = (s: string): string =>
  s.replace(TO_ENCODE, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0').toUpperCase()}`);
const unpct = (s: string): string =>
  s.replace(/%([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));

/** Properties for `headers`: plain where the proxy takes them as they are, encoded otherwise. */
export function encodeProperties(headers: Headers): Map<string, string> {
  const out = new Map<string, string>();
  const encoded: string[] = [];
  for (const [name, value] of Object.entries(headers)) {
    if (CONTROL.test(name)) out.set(`${ENCODED_NAME}${pct(name)}`, pct(value));
    else if (CONTROL.test(value)) {
      out.set(name, pct(value));
      encoded.push(name);
    } else out.set(name, value);
  }
  if (encoded.length > 0) out.set(ENCODED_VALUES, JSON.stringify(encoded));
  return out;
}

/** The headers `encodeProperties` was given, from received properties (others pass unchanged). */
export function decodeProperties(properties: Map<string, string>): Map<string, string> {
  const marker = properties.get(ENCODED_VALUES);
  let encoded: Set<string> = new Set();
  if (marker !== undefined)
    try {
      const names: unknown = JSON.parse(marker);
      if (Array.isArray(names)) encoded = new Set(names.filter((n): n is string => typeof n === 'string'));
    } catch {
      // Not ours: leave the values as they are.
    }
  const out = new Map<string, string>();
  for (const [name, value] of properties) {
    if (name === ENCODED_VALUES && marker !== undefined) continue;
    if (name.startsWith(ENCODED_NAME)) out.set(unpct(name.slice(ENCODED_NAME.length)), unpct(value));
    else out.set(name, encoded.has(name) ? unpct(value) : value);
  }
  return out;
}

/** Whether the proxy takes `key` as a message key. */
export function usableMessageKey(key: string | undefined): key is string {
  return key !== undefined && key.trim() !== '' && !CONTROL.test(key);
}

/**
 * The FIFO message group of `key`: the key itself when the proxy takes it, else a hash of it
 * (the key travels in the `mq-key` property either way).
 */
export function messageGroupOf(key: string): string {
  if (usableMessageKey(key) && key.length <= MAX_GROUP_CHARS) return key;
  return `mq-h-${createHash('sha256').update(key).digest('hex').slice(0, 40)}`;
}
