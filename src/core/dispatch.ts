import { decodeBody } from './codec.js';
import { ConfigError } from './errors.js';
import type { Delivery, Handler, Headers, IdOrigin } from './message.js';
import { backoffDelay, type ResolvedSubscribeOptions } from './options.js';
import { uuidv7 } from './uuid.js';
import { applicationHeaders, deadLetterHeaders, deadLetterInfo, H } from './wire.js';

/** A record as an adapter read it, before decoding. */
export interface ReceivedRecord {
  topic: string;
  payload: Uint8Array;
  /** All headers as stored, mqkit's included. */
  headers: Headers;
  key: string | undefined;
  /** Produce time, ms since the epoch. */
  timestamp: number;
  partition: number | undefined;
  offset: string | undefined;
  /** 1-based delivery attempt, as the adapter counted it. */
  attempt: number;
}

/** What the adapter must do with a record after the handler ran. */
export type Outcome =
  | { kind: 'ack' }
  /** Tag filtered out: acknowledge without running the handler. */
  | { kind: 'skip' }
  /** Deliver again as attempt `attempt` after `delayMs`. */
  | { kind: 'retry'; attempt: number; delayMs: number; error: unknown }
  /** Publish to `topic` with `headers` (the error recorded), then acknowledge. No topic: discard. */
  | { kind: 'dead-letter'; topic: string | undefined; headers: Headers; error: unknown };

const ACK: Outcome = Object.freeze({ kind: 'ack' });
const SKIP: Outcome = Object.freeze({ kind: 'skip' });

/**
 * Where a subscription's tags are filtered:
 * - `'client'`: every record of the topic reaches the subscription, which skips (acknowledges
 *   without running the handler) the ones whose tag it did not ask for (Kafka, memory, RabbitMQ
 *   stream topics);
 * - `'broker'`: the broker routes only the subscribed tags to the group's queue, so a record
 *   with another tag got there by a stale or foreign binding: it is dead-lettered with the
 *   reason, never dropped (RabbitMQ queues).
 */
export type TagFilter = 'client' | 'broker';

/**
 * The broker-neutral part of consuming one record: identity, tag filter, decode, run the
 * handler, and decide between ack, retry (with back-off) and dead-letter. Never throws.
 */
export async function dispatch(
  record: ReceivedRecord,
  options: ResolvedSubscribeOptions,
  handler: Handler<unknown>,
  signal: AbortSignal,
  tagFilter: TagFilter = 'client',
): Promise<Outcome> {
  let delivery = prepareDelivery(record, options, signal, tagFilter);
  if (delivery instanceof Promise) delivery = await delivery;
  if (!isDelivery(delivery)) return delivery;
  try {
    const result = handler(delivery);
    if (result !== undefined) await result; // a thenable of any kind, not only a native Promise
    return ACK;
  } catch (error) {
    return failureOutcome(record, options, error);
  }
}

/** Whether `prepareDelivery` gave a delivery to hand out rather than an outcome. */
export function isDelivery(value: Delivery<unknown> | Outcome): value is Delivery<unknown> {
  return (value as Outcome).kind === undefined;
}

/**
 * Turns a record into the `Delivery` a handler gets, or into its outcome when no handler
 * should see it: skipped (a tag filtered in the client) or dead-lettered (a tag the broker
 * should not have routed here, or a body its codec or schema refuses). Asynchronous only when
 * the topic's schema validates asynchronously.
 *
 * A record whose producer set no `mq-id` is given one here, written into `record.headers` so
 * that retry and dead-letter copies made from them carry it (see `IdOrigin`).
 */
export function prepareDelivery(
  record: ReceivedRecord,
  options: ResolvedSubscribeOptions,
  signal: AbortSignal,
  tagFilter: TagFilter,
): Delivery<unknown> | Outcome | Promise<Delivery<unknown> | Outcome> {
  const headers = record.headers;
  let id = headers[H.id];
  let idOrigin: IdOrigin = 'message';
  if (id === undefined) {
    if (record.offset !== undefined) {
      id = `${record.topic}-${record.partition ?? 0}-${record.offset}`;
      idOrigin = 'position';
    } else {
      id = uuidv7();
      idOrigin = 'delivery';
    }
    headers[H.id] = id;
    headers[H.idOrigin] = idOrigin;
  } else {
    const origin = headers[H.idOrigin];
    if (origin === 'position' || origin === 'delivery') idOrigin = origin;
  }
  const tag = headers[H.tag];
  if (options.tags !== undefined && (tag === undefined || !options.tags.has(tag))) {
    if (tagFilter === 'client') return SKIP;
    return deadLetter(
      record,
      options,
      new ConfigError(
        'subscribe.tags',
        `a message tagged ${tag === undefined ? '(none)' : `'${tag}'`} reached group '${options.group}', which subscribes to ${[...options.tags].join(', ')}: the queue has a binding no member of the group asked for (left by an earlier subscription or added by hand)`,
      ),
    );
  }
  let body: unknown;
  try {
    body = decodeBody(record.payload, headers[H.contentType], options.spec);
  } catch (error) {
    return deadLetter(record, options, error);
  }
  if (body instanceof Promise) {
    return body.then(
      (decoded: unknown) => toDelivery(record, decoded, tag, id, idOrigin, signal),
      (error: unknown) => deadLetter(record, options, error),
    );
  }
  // No closure on this path: it runs once per message (and costs more than its own work).
  return toDelivery(record, body, tag, id, idOrigin, signal);
}

function toDelivery(
  record: ReceivedRecord,
  body: unknown,
  tag: string | undefined,
  id: string,
  idOrigin: IdOrigin,
  signal: AbortSignal,
): Delivery<unknown> {
  const headers = record.headers;
  return {
    topic: record.topic,
    body,
    key: record.key,
    tag,
    headers: applicationHeaders(headers),
    id,
    idOrigin,
    attempt: record.attempt,
    timestamp: Number(headers[H.timestamp] ?? record.timestamp),
    partition: record.partition,
    offset: record.offset,
    deadLetter: headers[H.errorCode] === undefined ? undefined : deadLetterInfo(headers),
    signal,
  };
}

/** What follows a failed attempt: another one after back-off, or the dead-letter topic. */
export function failureOutcome(
  record: ReceivedRecord,
  options: ResolvedSubscribeOptions,
  error: unknown,
): Outcome {
  if (record.attempt >= options.retry.attempts) return deadLetter(record, options, error);
  return {
    kind: 'retry',
    attempt: record.attempt + 1,
    delayMs: backoffDelay(options.retry, record.attempt),
    error,
  };
}

function deadLetter(record: ReceivedRecord, options: ResolvedSubscribeOptions, error: unknown): Outcome {
  return {
    kind: 'dead-letter',
    topic: options.deadLetterTopic,
    error,
    headers: deadLetterHeaders(record.headers, error, {
      topic: record.topic,
      group: options.group,
      partition: record.partition,
      offset: record.offset,
      attempts: record.attempt,
    }),
  };
}
