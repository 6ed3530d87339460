import { decodeBody } from './codec.js';
import type { Delivery, Handler, Headers } from './message.js';
import { backoffDelay, type ResolvedSubscribeOptions } from './options.js';
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
 * The broker-neutral part of consuming one record: tag filter, decode, run the handler, and
 * decide between ack, retry (with back-off) and dead-letter. Never throws.
 */
export async function dispatch(
  record: ReceivedRecord,
  options: ResolvedSubscribeOptions,
  handler: Handler<unknown>,
  signal: AbortSignal,
): Promise<Outcome> {
  const headers = record.headers;
  const tag = headers[H.tag];
  if (options.tags !== undefined && (tag === undefined || !options.tags.has(tag))) return SKIP;
  let body: unknown;
  try {
    body = decodeBody(record.payload, headers[H.contentType], options.spec);
    if (body instanceof Promise) body = await body;
  } catch (error) {
    return deadLetter(record, options, error);
  }
  const delivery: Delivery<unknown> = {
    topic: record.topic,
    body,
    key: record.key,
    tag,
    headers: applicationHeaders(headers),
    id: headers[H.id] ?? `${record.topic}-${record.partition ?? 0}-${record.offset ?? record.timestamp}`,
    attempt: record.attempt,
    timestamp: Number(headers[H.timestamp] ?? record.timestamp),
    partition: record.partition,
    offset: record.offset,
    deadLetter: headers[H.errorCode] === undefined ? undefined : deadLetterInfo(headers),
    signal,
  };
  try {
    const result = handler(delivery);
    if (result !== undefined) await result; // a thenable of any kind, not only a native Promise
    return ACK;
  } catch (error) {
    if (record.attempt >= options.retry.attempts) return deadLetter(record, options, error);
    return {
      kind: 'retry',
      attempt: record.attempt + 1,
      delayMs: backoffDelay(options.retry, record.attempt),
      error,
    };
  }
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
