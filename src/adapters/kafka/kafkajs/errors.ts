/**
 * kafkajs's errors, recognised by name and protocol error type (kafkajs wraps the errors it
 * gives up on, so causes are searched too), and their mapping to `MqError`s.
 */
import {
  ConnectionError,
  isMqError,
  type MqError,
  PublishError,
  TimeoutError,
} from '../../../core/errors.js';
import { oneLine, tlsFailure } from '../../../core/tls.js';

export const CONNECTION_ERRORS = new Set([
  'KafkaJSConnectionError',
  'KafkaJSConnectionClosedError',
  'KafkaJSBrokerNotFound',
  'KafkaJSNoBrokerAvailableError',
  'KafkaJSGroupCoordinatorNotFound',
  'KafkaJSMetadataNotLoaded',
  'KafkaJSTopicMetadataNotLoaded',
]);
export const TIMEOUT_ERRORS = new Set([
  'KafkaJSRequestTimeoutError',
  'KafkaJSTimeout',
  'KafkaJSLockTimeout',
  'KafkaJSNumberOfRetriesExceeded',
]);
/** Protocol errors about the records themselves: sending them again cannot succeed. */
const BAD_RECORD_ERRORS = new Set([
  'MESSAGE_TOO_LARGE',
  'RECORD_LIST_TOO_LARGE',
  'INVALID_RECORD',
  'CORRUPT_MESSAGE',
  'INVALID_TOPIC_EXCEPTION',
  'TOPIC_AUTHORIZATION_FAILED',
]);

export interface KafkajsErrorShape {
  name?: string;
  message?: string;
  type?: string;
  code?: unknown;
  retriable?: boolean;
  cause?: unknown;
}

/** True when the error, or one of its `cause`s (kafkajs wraps errors it gives up on), matches. */
export function someCause(error: unknown, matches: (e: KafkajsErrorShape) => boolean): boolean {
  let e: unknown = error;
  for (let depth = 0; depth < 5 && typeof e === 'object' && e !== null; depth++) {
    if (matches(e as KafkajsErrorShape)) return true;
    e = (e as KafkajsErrorShape).cause;
  }
  return false;
}

export const producerStateLost = (error: unknown): boolean =>
  someCause(error, (e) => PRODUCER_STATE_ERRORS.has(e.type ?? ''));

export const isTransientMetadataError = (error: unknown): boolean =>
  someCause(error, (e) => TRANSIENT_METADATA_ERRORS.has(e.type ?? ''));

export const hasConnectionCause = (error: unknown): boolean =>
  someCause(error, (e) => CONNECTION_ERRORS.has(e.name ?? ''));

/**
 * Maps a kafkajs error to an `MqError`: timeouts and exhausted retries to `TimeoutError`,
 * connection trouble to `ConnectionError`, and the rest to `PublishError` (when sending) or
 * `ConnectionError`, keeping kafkajs's `retriable`.
 */
export function toMqError(error: unknown, context: string, publishing = false): MqError {
  if (isMqError(error)) return error;
  const e = (typeof error === 'object' && error !== null ? error : {}) as KafkajsErrorShape;
  const name = e.name ?? '';
  const message = `${context}: ${e.message ?? String(error)}${e.type ? ` (${e.type})` : ''}`;
  if (TIMEOUT_ERRORS.has(name) || e.type === 'REQUEST_TIMED_OUT') {
    return new TimeoutError(message, { cause: error });
  }
  // A certificate that does not verify, a host name mismatch, a client certificate refused:
  // trying again cannot help, the configuration must change.
  const tls = tlsFailure(error);
  if (tls !== undefined)
    return new ConnectionError(
      `${context}: ${tls.reason} (TLS ${tls.code}: ${oneLine(e.message ?? String(error))})`,
      {
        cause: error,
        retriable: false,
      },
    );
  // kafkajs's retrier wraps an error it gave up on as non-retriable (cause: the original); a
  // connection refused or reset is still worth retrying for the caller, later.
  if (hasConnectionCause(error)) return new ConnectionError(message, { cause: error });
  if (name === 'KafkaJSSASLAuthenticationError')
    return new ConnectionError(`${context}: authentication failed: ${e.message ?? String(error)}`, {
      cause: error,
      retriable: false,
    });
  const retriable = e.type !== undefined && BAD_RECORD_ERRORS.has(e.type) ? false : e.retriable !== false;
  return publishing
    ? new PublishError(message, { cause: error, retriable })
    : new ConnectionError(message, { cause: error, retriable });
}

/** Metadata errors a broker answers for a topic it has not caught up with yet. */
export const TRANSIENT_METADATA_ERRORS = new Set([
  'UNKNOWN_TOPIC_OR_PARTITION',
  'LEADER_NOT_AVAILABLE',
  'NOT_LEADER_FOR_PARTITION',
  'NOT_LEADER_OR_FOLLOWER',
]);

/**
 * Errors that mean the idempotent producer's sequence state no longer matches the broker's (a
 * broker lost it in a crash, say). kafkajs does not recover from them: the producer is replaced
 * by a new one, with a new producer id, and the failed send is retriable (it was not stored).
 */
const PRODUCER_STATE_ERRORS = new Set([
  'OUT_OF_ORDER_SEQUENCE_NUMBER',
  'UNKNOWN_PRODUCER_ID',
  'INVALID_PRODUCER_EPOCH',
]);

/** Errors of one broker that cannot be reached (refused, timed out): skipped when asking each broker. */
export const isUnreachable = (error: unknown): boolean =>
  hasConnectionCause(error) || someCause(error, (e) => TIMEOUT_ERRORS.has(e.name ?? ''));
