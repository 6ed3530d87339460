import { encodeBody } from './codec.js';
import { ConfigError, isMqError, type MqError, PublishError } from './errors.js';
import type { DeadLetterInfo, Headers, OutgoingMessage } from './message.js';
import { isPlainObject, MAX_TIMER_MS, thrownText, topicSpec, userTopicName } from './options.js';
import { uuidv7 } from './uuid.js';

/**
 * Header names mqkit writes on the wire. They are plain string headers, readable by any client
 * of the broker; the README documents them. Application headers must not start with `mq-`.
 */
export const H = {
  id: 'mq-id',
  /** Absent when the producer set `mq-id`; 'position' or 'delivery' when mqkit derived it (see `IdOrigin`). */
  idOrigin: 'mq-id-origin',
  tag: 'mq-tag',
  key: 'mq-key',
  contentType: 'content-type',
  /** Set on a retried copy: the attempt it will be. */
  attempt: 'mq-attempt',
  /** Original produce time (ms) on retried and delayed copies. */
  timestamp: 'mq-timestamp',
  /** Delayed and retried copies: topic (and for retries, group) to deliver to, and when. */
  targetTopic: 'mq-target-topic',
  targetGroup: 'mq-target-group',
  deliverAt: 'mq-deliver-at',
  /** Dead-letter records. */
  errorCode: 'mq-error-code',
  errorName: 'mq-error-name',
  errorMessage: 'mq-error-message',
  originalTopic: 'mq-original-topic',
  originalGroup: 'mq-original-group',
  originalPartition: 'mq-original-partition',
  originalOffset: 'mq-original-offset',
  failedAt: 'mq-failed-at',
} as const;

/** A message encoded for any broker: the bytes plus string headers (mqkit's and the application's). */
export interface WireMessage {
  topic: string;
  id: string;
  key: string | undefined;
  tag: string | undefined;
  /** Application headers plus `mq-id`, `content-type` and, when set, `mq-tag`. */
  headers: Headers;
  payload: Uint8Array;
  delayMs: number;
}

const ALLOWED = ['topic', 'body', 'key', 'tag', 'headers', 'id', 'delayMs'];
const ALLOWED_SET: ReadonlySet<string> = new Set(ALLOWED);

/**
 * Validates and encodes one outgoing message. Throws `ConfigError`, `DecodeError` (bad body) or a
 * non-retriable `PublishError` (too large). `now` is the time a generated `mq-id` carries
 * (default: the clock), so that a batch can read the clock once.
 */
export function encodeMessage(
  message: OutgoingMessage<unknown>,
  maxBytes: number,
  now?: number,
): WireMessage {
  if (typeof message !== 'object' || message === null) throw new ConfigError('message', 'must be an object');
  for (const k in message) {
    if (!ALLOWED_SET.has(k))
      throw new ConfigError(`message.${k}`, `unknown field; expected one of ${ALLOWED.join(', ')}`);
  }
  const topic = userTopicName(message.topic, 'message.topic');
  const { payload, contentType } = encodeBody(message.body, topicSpec(message.topic));
  if (payload.byteLength > maxBytes) {
    throw new PublishError(
      `message to ${topic} is ${payload.byteLength} bytes; this broker accepts at most ${maxBytes}`,
      { retriable: false },
    );
  }
  const id = message.id ?? uuidv7(now);
  if (typeof id !== 'string' || id === '') throw new ConfigError('message.id', 'must be a non-empty string');
  const { key, tag } = message;
  if (key !== undefined && typeof key !== 'string') throw new ConfigError('message.key', 'must be a string');
  if (tag !== undefined && (typeof tag !== 'string' || !/^[A-Za-z0-9_-]{1,100}$/.test(tag))) {
    throw new ConfigError(
      'message.tag',
      'must be 1-100 characters of A-Z a-z 0-9 _ - (dots are routing separators)',
    );
  }
  // Literal keys (H.id, H.contentType): V8 builds this shape faster than computed ones.
  const headers: Headers = { 'mq-id': id, 'content-type': contentType };
  if (tag !== undefined) headers[H.tag] = tag;
  if (message.headers !== undefined) addApplicationHeaders(headers, message.headers);
  const delayMs = message.delayMs ?? 0;
  if (typeof delayMs !== 'number' || !(delayMs >= 0 && delayMs <= MAX_TIMER_MS)) {
    throw new ConfigError(
      'message.delayMs',
      `must be a number of milliseconds from 0 to ${MAX_TIMER_MS} (24.8 days)`,
    );
  }
  return { topic, id, key, tag, headers, payload, delayMs };
}

/**
 * Copies the application's headers after checking them: a plain object of string values, names
 * neither empty nor reserved. Reserved, in any letter case (brokers and HTTP bridges do not agree
 * on case): `mq-*`, mqkit's own, and `content-type`, which the topic's codec sets; a sender that
 * set it could only make the receiver decode the body with the wrong codec, so it is refused
 * rather than honoured or dropped (send bytes, or define the topic with a codec, instead).
 */
function addApplicationHeaders(headers: Headers, given: unknown): void {
  if (!isPlainObject(given)) {
    throw new ConfigError('message.headers', 'must be an object of string values, e.g. { "x-trace": "abc" }');
  }
  for (const name of Object.keys(given)) {
    const value = given[name];
    const field = `message.headers.${name}`;
    const lower = name.toLowerCase();
    if (name === '') throw new ConfigError('message.headers', 'a header name must not be empty');
    if (lower.startsWith('mq-'))
      throw new ConfigError(field, "names starting with 'mq-' are reserved for mqkit");
    if (lower === H.contentType) {
      throw new ConfigError(
        field,
        "is set by the topic's codec (application/json, application/octet-stream for bytes); use defineTopic with a codec to change it",
      );
    }
    // An own '__proto__' key (from JSON.parse) would be swallowed by the assignment below.
    if (name === '__proto__') throw new ConfigError(field, 'is not a usable header name');
    if (typeof value !== 'string') throw new ConfigError(field, `must be a string (got ${typeof value})`);
    headers[name] = value;
  }
}

/** Application headers of a received message: everything but mqkit's `mq-*` and `content-type`. */
export function applicationHeaders(headers: Headers): Headers {
  let out: Headers | undefined;
  for (const name in headers) {
    if (!name.startsWith('mq-') && name !== H.contentType) {
      out ??= {};
      out[name] = headers[name] as string;
    }
  }
  return out ?? NO_HEADERS;
}

const NO_HEADERS: Headers = Object.freeze({}) as Headers;

/** Headers recording why a message was dead-lettered, added to its original headers. */
export function deadLetterHeaders(
  headers: Headers,
  error: unknown,
  origin: {
    topic: string;
    group: string;
    partition?: number | undefined;
    offset?: string | undefined;
    attempts: number;
  },
): Headers {
  const out: Headers = { ...headers };
  const err = error instanceof Error ? error : new Error(thrownText(error));
  out[H.errorCode] = isMqError(err) ? (err as MqError).code : 'HANDLER';
  // Whatever was thrown: a name or message that is not a string must not throw here.
  out[H.errorName] = thrownText(err.name);
  out[H.errorMessage] = thrownText(err.message).slice(0, 1000);
  out[H.originalTopic] = origin.topic;
  out[H.originalGroup] = origin.group;
  if (origin.partition !== undefined) out[H.originalPartition] = String(origin.partition);
  if (origin.offset !== undefined) out[H.originalOffset] = origin.offset;
  out[H.attempt] = String(origin.attempts);
  out[H.failedAt] = new Date().toISOString();
  delete out[H.targetTopic];
  delete out[H.targetGroup];
  delete out[H.deliverAt];
  return out;
}

/** Parses the dead-letter headers written by `deadLetterHeaders`. */
export function deadLetterInfo(headers: Headers): DeadLetterInfo {
  const partition = headers[H.originalPartition];
  return {
    errorCode: headers[H.errorCode] ?? 'HANDLER',
    errorName: headers[H.errorName] ?? 'Error',
    errorMessage: headers[H.errorMessage] ?? '',
    originalTopic: headers[H.originalTopic] ?? '',
    originalGroup: headers[H.originalGroup] ?? '',
    originalPartition: partition === undefined ? undefined : Number(partition),
    originalOffset: headers[H.originalOffset],
    attempts: Number(headers[H.attempt] ?? 1),
    failedAt: headers[H.failedAt] ?? '',
  };
}
