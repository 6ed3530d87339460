import type { ConsumeMessage, Options } from 'amqplib';
import type { ReceivedRecord } from '../../core/dispatch.js';
import { PublishError } from '../../core/errors.js';
import type { Headers } from '../../core/message.js';
import { H } from '../../core/wire.js';
import { HOP_HEADER_PREFIX } from './delay-route.js';
import { names } from './names.js';

/**
 * Header the partition queues' consistent-hash exchange hashes: the key, or a rotating token
 * for messages without a key so they spread over partitions instead of piling onto one.
 */
export const HASH_HEADER = 'mq-hash';

let unkeyed = 0;

/** How a message is published, beyond its headers and key. */
export interface PublishHow {
  /** Written to disk (delivery mode 2). Default true. */
  persistent?: boolean;
  /** Returned (and the publish failed) when no queue takes it. Default true. */
  mandatory?: boolean;
  /** More headers, e.g. a copy's `mq-attempt`. */
  extra?: Headers | undefined;
  /** AMQP `timestamp` in seconds. Default now; copies keep the original's. */
  timestampSeconds?: number | undefined;
}

/**
 * AMQP properties for a message whose headers include mqkit's: `mq-id` becomes `messageId`,
 * `content-type` `contentType`; the produce time is `timestamp` (seconds, as AMQP defines it);
 * the key travels in `mq-key` and the consistent-hash input in `mq-hash`; every other header
 * stays a header.
 */
export function publishOptions(
  headers: Headers,
  key: string | undefined,
  how: PublishHow = {},
): Options.Publish {
  const {
    persistent = true,
    mandatory = true,
    extra,
    timestampSeconds = Math.floor(Date.now() / 1000),
  } = how;
  const out: Record<string, string> = {};
  for (const name in headers) {
    if (name !== H.id && name !== H.contentType) out[name] = headers[name] as string;
  }
  if (key !== undefined) out[H.key] = key;
  out[HASH_HEADER] = key ?? (unkeyed++ & 0xffff).toString(36);
  if (extra !== undefined) Object.assign(out, extra);
  return {
    messageId: headers[H.id],
    contentType: headers[H.contentType],
    timestamp: timestampSeconds,
    persistent,
    mandatory,
    headers: out,
  };
}

/**
 * AMQP 0-9-1 short strings (exchange names, routing keys, `messageId`, `contentType`, header
 * names) hold at most 255 bytes of UTF-8.
 */
export const SHORTSTR_MAX_BYTES = 255;

/**
 * Most bytes a message's AMQP properties (headers, key, id, content type) may take encoded:
 * amqplib encodes them in a 64 KiB buffer. The content header frame carrying them must also fit
 * the connection's negotiated frame size (RabbitMQ's default 128 KiB), else RabbitMQ closes the
 * whole connection.
 */
export const PROPERTIES_MAX_BYTES = 65_536;

/** Content header frame around the properties: frame header 7, class/weight/body size 12, end 1. */
const HEADER_FRAME_OVERHEAD = 20;

function shortString(value: string | undefined, what: string): void {
  if (value === undefined) return;
  const bytes = Buffer.byteLength(value);
  if (bytes > SHORTSTR_MAX_BYTES) {
    throw new PublishError(
      `${what} is ${bytes} bytes; AMQP 0-9-1 carries it as a short string of at most ${SHORTSTR_MAX_BYTES} bytes`,
      { retriable: false },
    );
  }
}

function preview(text: string): string {
  return JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}...` : text);
}

/**
 * Throws a non-retriable `PublishError` naming the limit when amqplib could not encode this
 * publish or RabbitMQ would refuse its frames: a short string over 255 bytes, or properties over
 * {@link PROPERTIES_MAX_BYTES} (or over the connection's frame size, when smaller). Checked
 * before a message is queued, so it never reaches the channel.
 */
export function checkAmqpLimits(
  exchange: string,
  routingKey: string,
  options: Options.Publish,
  frameMax: number = Number.POSITIVE_INFINITY,
): void {
  shortString(exchange, 'the exchange name');
  shortString(routingKey, 'the routing key (the tag)');
  shortString(options.messageId, 'the message id (AMQP property messageId)');
  shortString(options.contentType, 'the content type (AMQP property contentType)');
  // Flags 2, delivery mode 1, timestamp 8, the two short strings with their length bytes.
  let size = 11 + (options.messageId === undefined ? 0 : 1 + Buffer.byteLength(options.messageId));
  size += options.contentType === undefined ? 0 : 1 + Buffer.byteLength(options.contentType);
  size += 4; // the header table's length
  const headers = options.headers as Record<string, unknown> | undefined;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    const nameBytes = Buffer.byteLength(name);
    if (nameBytes > SHORTSTR_MAX_BYTES) {
      throw new PublishError(
        `header name ${preview(name)} is ${nameBytes} bytes; AMQP 0-9-1 header names are short strings of at most ${SHORTSTR_MAX_BYTES} bytes`,
        { retriable: false },
      );
    }
    // A string travels as a long string: type byte, 4 length bytes, the bytes.
    size += 1 + nameBytes + 5 + (typeof value === 'string' ? Buffer.byteLength(value) : 8);
  }
  const limit = Math.min(PROPERTIES_MAX_BYTES, frameMax - HEADER_FRAME_OVERHEAD);
  if (size > limit) {
    throw new PublishError(
      `the message's headers, key and id take ${size} bytes encoded; RabbitMQ takes at most ${limit} bytes of AMQP properties per message (the key travels in headers mq-key and mq-hash, so it counts twice)`,
      { retriable: false },
    );
  }
}

/** Routing key of a message: its tag, or empty. Topic-exchange bindings filter on it. */
export function routingKey(tag: string | undefined): string {
  return tag ?? '';
}

/** Broker-added headers that are not the application's: dead-lettering history, stream offsets. */
function brokerHeader(name: string): boolean {
  return (
    name.startsWith('x-death') ||
    name.startsWith('x-first-death-') ||
    name.startsWith('x-last-death-') ||
    name === 'x-delivery-count' ||
    name.startsWith('x-stream-') ||
    name.startsWith(HOP_HEADER_PREFIX) ||
    name === HASH_HEADER
  );
}

/** String headers of a delivery, mqkit's included, with AMQP properties mapped back. */
export function receivedHeaders(message: ConsumeMessage): Headers {
  const out: Headers = {};
  const raw = message.properties.headers;
  if (raw !== undefined) {
    for (const name in raw) {
      if (brokerHeader(name)) continue;
      const value: unknown = raw[name];
      if (typeof value === 'string') out[name] = value;
      else if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint')
        out[name] = String(value);
      else if (Buffer.isBuffer(value)) out[name] = value.toString('utf8');
    }
  }
  const { messageId, contentType } = message.properties;
  if (out[H.id] === undefined && typeof messageId === 'string' && messageId !== '') out[H.id] = messageId;
  if (out[H.contentType] === undefined && typeof contentType === 'string') out[H.contentType] = contentType;
  return out;
}

/** Numeric header of a delivery (x-delivery-count, x-stream-offset), if present. */
export function numericHeader(message: ConsumeMessage, name: string): number | undefined {
  const value: unknown = message.properties.headers?.[name];
  if (typeof value === 'number') return value;
  if (typeof value === 'bigint') return Number(value);
  return undefined;
}

/**
 * The record `dispatch` consumes.
 *
 * Tag: a message that came through the topic exchange was routed by its routing key, which is
 * the tag (mqkit publishes with routing key = tag), so the routing key is the tag whatever
 * `mq-tag` says; other clients often set only the routing key. Copies (retries, delay tiers)
 * come through other exchanges and carry `mq-tag`.
 *
 * Attempts: the `mq-attempt` of a retried copy addressed to this group (a dead-letter copy's
 * `mq-attempt` counts the original's attempts, not the reader's), plus redeliveries: the
 * broker's `x-delivery-count` on quorum queues, else 1 when the `redelivered` flag is set
 * (classic queues flag a redelivery without counting them).
 */
export function toRecord(
  message: ConsumeMessage,
  topic: string,
  group: string,
  partition: number | undefined,
  offset: string | undefined,
): ReceivedRecord {
  const headers = receivedHeaders(message);
  const { exchange, routingKey: routed, redelivered } = message.fields;
  if (routed !== '' && exchange === names.topicExchange(topic)) headers[H.tag] = routed;
  const retried = headers[H.targetGroup] === group ? Number(headers[H.attempt]) : Number.NaN;
  const base = Number.isInteger(retried) && retried > 0 ? retried : 1;
  const timestamp = message.properties.timestamp;
  return {
    topic,
    payload: message.content,
    headers,
    key: headers[H.key],
    timestamp: typeof timestamp === 'number' && timestamp > 0 ? timestamp * 1000 : Date.now(),
    partition,
    offset,
    attempt: base + (numericHeader(message, 'x-delivery-count') ?? (redelivered ? 1 : 0)),
  };
}
