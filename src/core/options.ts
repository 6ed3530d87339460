import type { Acks } from './broker.js';
import type { TopicSpec } from './codec.js';
import { ConfigError, type MqError, UnsupportedError } from './errors.js';
import type { BatchHandler, Handler, OutgoingMessage, TopicRef } from './message.js';

/** Producer options. Every field is optional; defaults are the safe choice. */
export interface ProducerOptions {
  /** Default 'all': every in-sync replica (Kafka), publisher confirm of a persistent message (RabbitMQ). */
  acks?: Acks;
  /** How long `send` waits for the broker's acknowledgement. Default 30 000 ms; 1 ms to {@link MAX_TIMER_MS}. */
  timeoutMs?: number;
  /**
   * Kafka only: Kafka's idempotent producer (no duplicates from the producer's own retries).
   * Default true with acks 'all'; requires acks 'all'. The memory and RabbitMQ brokers have no
   * such producer: `true` is refused there with an `UnsupportedError`, `false` is accepted.
   */
  idempotent?: boolean;
  /** Where errors of `sendOneWay` go. Default: the connection's logger, at `error`. */
  onError?: (error: MqError, message: OutgoingMessage<unknown>) => void;
}

export interface BackoffOptions {
  /** Delay before the second attempt. Default 1000 ms; 0 to {@link MAX_TIMER_MS}. */
  initialMs?: number;
  /** Each further delay is the previous times this. Default 2; a number from 1 to {@link MAX_BACKOFF_MULTIPLIER}. */
  multiplier?: number;
  /** Upper bound of a delay. Default 60 000 ms; from `initialMs` to {@link MAX_TIMER_MS}. */
  maxMs?: number;
}

export interface RetryOptions {
  /**
   * Deliveries in all, the first included, before the message goes to the dead-letter topic.
   * Default 5; 1 to {@link MAX_ATTEMPTS}.
   */
  attempts?: number;
  backoff?: BackoffOptions;
}

export type StartFrom = 'earliest' | 'latest' | { timestamp: number | Date };

/**
 * Options of `Broker.subscribe`.
 *
 * Ordering (`order`):
 * - `'key'` (default): messages with the same key are handled one at a time, in the order they
 *   were stored; different keys run in parallel up to `concurrency`. A failing message holds up
 *   only its own key while it retries. Messages without a key have no order between them.
 * - `'partition'`: one message at a time per partition; partitions run in parallel.
 * - `'concurrent'`: no order; up to `concurrency` handlers at once; retries do not block others.
 */
export interface SubscribeOptions<T = unknown> {
  topic: TopicRef<T>;
  /** Consumer group. Required in clustering mode; in broadcasting mode a name prefix. */
  group?: string;
  /**
   * 'clustering' (default): members of one group share the messages, every group gets them all.
   * 'broadcasting': this subscription gets every message, whatever else subscribes.
   */
  mode?: 'clustering' | 'broadcasting';
  order?: 'concurrent' | 'key' | 'partition';
  /** Handlers running at once in this subscription. Default 1; 1 to {@link MAX_CONCURRENCY}. */
  concurrency?: number;
  /** Only messages with one of these tags. Default: all messages, tagged or not. */
  tags?: readonly string[];
  /**
   * Where a group without a committed position starts. Default 'earliest' in clustering mode
   * (nothing already stored is lost to a new group) and 'latest' in broadcasting mode (a new
   * instance gets what is sent from now on). Ignored once the group has committed. On RabbitMQ
   * a group's queue holds only what was sent after it was first declared.
   */
  startFrom?: StartFrom;
  retry?: RetryOptions;
  /**
   * Where a message goes when its attempts are exhausted or it cannot be decoded.
   * Default: topic `<topic>.<group>.dlq`. `'discard'` drops it (unsafe, opt-in).
   */
  deadLetter?: { topic?: string } | 'discard';
  /** Default wait of `close()` for handlers in flight. Default 30 000 ms; 0 to {@link MAX_TIMER_MS}. */
  closeTimeoutMs?: number;
}

/**
 * How a batch handler's batches are made: a batch is handed over once it holds `maxSize`
 * deliveries or `maxWaitMs` passed since its first one arrived, whichever comes first.
 */
export interface BatchOptions {
  /** Most deliveries in one batch. Default 100; 1 to {@link MAX_BATCH_SIZE}. */
  maxSize?: number;
  /** Longest wait for a batch to fill, in ms. Default 10; 0 hands over what one fetch brought. */
  maxWaitMs?: number;
}

/**
 * Options of a subscription with a batch handler (`subscribe({ ..., batch: {} }, handler)`).
 *
 * Order: with `order` 'key' or 'partition', a partition's batches are handled one after another
 * (partitions in parallel, up to `concurrency` batches at once), so a key's messages are never
 * in two batches at once and batches keep the stored order. With 'concurrent', up to
 * `concurrency` batches run at once in no order.
 */
export interface BatchSubscribeOptions<T = unknown> extends SubscribeOptions<T> {
  batch: BatchOptions;
}

/** Largest `batch.maxSize`. */
export const MAX_BATCH_SIZE = 10_000;

/** Subscribe options after defaults and validation. For adapters; not part of the public API. */
export interface ResolvedSubscribeOptions {
  topic: string;
  spec: TopicSpec<unknown> | undefined;
  group: string;
  mode: 'clustering' | 'broadcasting';
  order: 'concurrent' | 'key' | 'partition';
  concurrency: number;
  tags: ReadonlySet<string> | undefined;
  startFrom: 'earliest' | 'latest' | { timestamp: number };
  retry: { attempts: number; initialMs: number; multiplier: number; maxMs: number };
  deadLetterTopic: string | undefined;
  closeTimeoutMs: number;
  /** Set for a batch handler. */
  batch: { maxSize: number; maxWaitMs: number } | undefined;
}

export interface ResolvedProducerOptions {
  acks: Acks;
  timeoutMs: number;
  /** Always false on a broker without an idempotent producer. */
  idempotent: boolean;
  onError: ((error: MqError, message: OutgoingMessage<unknown>) => void) | undefined;
}

/*
 * Upper bounds of numeric options. Each is far above any sane setting and low enough that a
 * typo (an extra zero, `1e9`) fails at once with a ConfigError instead of exhausting memory,
 * sockets or the broker later.
 */

/**
 * Most partitions of a topic (`ensureTopic` on every adapter, `memory://?partitions=`): 4096. Kafka clusters advise a few thousand partitions per broker in all, so a single topic
 * beyond this is a mistake; on RabbitMQ every partition is a queue per key-ordered group (and a
 * message in the topic's meta queue), and the embedded broker keeps a log per partition.
 */
export const MAX_PARTITIONS = 4096;
/**
 * Most handlers of one subscription at once: 10 000. RabbitMQ's prefetch (2 × concurrency by
 * default) is a 16-bit count, and more parallel handlers than this in one process is a typo.
 */
export const MAX_CONCURRENCY = 10_000;
/** Most deliveries of one message before it is dead-lettered (`retry.attempts`): 1000. */
export const MAX_ATTEMPTS = 1000;
/** Largest `retry.backoff.multiplier`: 100 (delays are capped by `maxMs` anyway). */
export const MAX_BACKOFF_MULTIPLIER = 100;
/** Largest `memory://?retention=`: 10 000 000 consumed records kept per partition. */
export const MAX_RETENTION = 10_000_000;

const NAME = /^[A-Za-z0-9._-]{1,200}$/;

/**
 * Validates a topic or group name: 1-200 characters of A-Z a-z 0-9 . _ -, not `.` or `..`
 * (Kafka refuses them and RabbitMQ would take them). Adapters also use it for names of their
 * own; names given by the user for a topic go through {@link userTopicName}.
 */
export function topicName(ref: TopicRef<unknown>, field = 'topic'): string {
  const name = typeof ref === 'string' ? ref : isObject(ref) ? ref.name : undefined;
  if (typeof name === 'string' && name === lastValidName) return name; // the send hot path names one topic over and over
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new ConfigError(field, `must be 1-200 characters of A-Z a-z 0-9 . _ - (got ${shown(name)})`);
  }
  if (name === '.' || name === '..') throw new ConfigError(field, `must not be '.' or '..'`);
  lastValidName = name;
  return name;
}

let lastValidName: string | undefined;

/**
 * Validates a consumer group named by the application: a string by the rules of
 * {@link topicName}, not starting with `mq.` (mqkit's own groups, such as Kafka's delay forwarder).
 */
export function groupName(value: unknown, field: string): string {
  if (typeof value !== 'string') throw new ConfigError(field, `must be a string (got ${shown(value)})`);
  const name = topicName(value, field);
  if (RESERVED_TOPIC.test(name))
    throw new ConfigError(
      field,
      `names starting with 'mq.' are reserved for mqkit's own groups (got '${name}')`,
    );
  return name;
}

const RESERVED_TOPIC = /^mq\./i;

/**
 * A topic named by the application (send, subscribe, ensureTopic, dead-letter topic): a
 * {@link topicName} that does not start with `mq.`, the prefix of mqkit's own topics (Kafka's
 * delay tiers `mq.delay.*`), so an application cannot write into or read from them by accident.
 */
export function userTopicName(ref: TopicRef<unknown>, field = 'topic'): string {
  const name = topicName(ref, field);
  if (name === lastUserTopicName) return name; // as in topicName: one topic over and over
  if (RESERVED_TOPIC.test(name)) {
    throw new ConfigError(
      field,
      `names starting with 'mq.' are reserved for mqkit's own topics (got '${name}')`,
    );
  }
  lastUserTopicName = name;
  return name;
}

let lastUserTopicName: string | undefined;

/** Longest name a topic derived from a topic and a group may have (Kafka's topic name limit). */
const DERIVED_NAME_LIMIT = 249;

export function topicSpec(ref: TopicRef<unknown>): TopicSpec<unknown> | undefined {
  return typeof ref === 'string' ? undefined : ref;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

/**
 * An object literal (or `Object.create(null)`): not an array, a Map, a class instance or a
 * boxed string. Checks the prototype's prototype rather than `Object.prototype` itself, so an
 * object from another realm (a vm context, a worker's structured clone) passes too.
 */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (!isObject(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === null || Object.getPrototypeOf(proto) === null;
}

/** An optional options object: `{}` when absent, else a plain object, or a `ConfigError` naming `field`. */
export function objectOption(value: unknown, field: string): Record<string, unknown> {
  if (value === undefined) return {};
  if (!isPlainObject(value)) {
    const got = value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value;
    throw new ConfigError(field, `must be an options object (got ${got})`);
  }
  return value;
}

/** Refuses keys of `value` not in `allowed`, naming the field. */
export function refuseUnknownKeys(value: object, allowed: readonly string[], path: string): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) {
      throw new ConfigError(`${path}${key}`, `unknown option; expected one of ${allowed.join(', ')}`);
    }
  }
}

/** Longest timer Node honours (~24.8 days); longer ones fire at once. */
export const MAX_TIMER_MS = 2_147_483_647;

/**
 * Reads an integer URL query parameter: plain decimal digits only (no `1e9`, `0x10`, `+1`,
 * `1.0` or spaces, which `Number()` would take), then {@link intOption}'s range check.
 */
export function intQueryParam(
  value: string | undefined,
  field: string,
  min: number,
  fallback: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (value === undefined) return fallback;
  if (!/^[0-9]{1,16}$/.test(value)) {
    throw new ConfigError(
      field,
      `must be a plain decimal integer (got ${JSON.stringify(value.slice(0, 40))})`,
    );
  }
  return intOption(Number(value), field, min, fallback, max);
}

/**
 * A value as an error message shows it. Never throws (`String` does on an object without a
 * prototype or with a throwing `toString`) and never prints an object's contents, which may hold
 * a secret.
 */
export function shown(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
    case 'number':
    case 'boolean':
    case 'bigint':
    case 'undefined':
      return String(value);
    case 'symbol':
      return 'a symbol';
    case 'function':
      return 'a function';
    default:
      return value === null ? 'null' : Array.isArray(value) ? 'an array' : 'an object';
  }
}

/**
 * What was thrown, as text for an error message or a header: `String(thrown)` (`Error: ...`
 * for an error, a string as is), or what {@link shown} says when `String` throws (an object
 * without a prototype, a throwing `toString`). Never throws.
 */
export function thrownText(thrown: unknown): string {
  try {
    return String(thrown);
  } catch {
    return shown(thrown);
  }
}

/** Validates an optional integer option: `fallback` when absent, a `ConfigError` naming `field` when out of range. */
export function intOption(
  value: unknown,
  field: string,
  min: number,
  fallback: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`;
    throw new ConfigError(field, `must be an integer ${range} (got ${shown(value)})`);
  }
  return value;
}

/** Validates an optional string-union option: `fallback` when absent, else one of `allowed`. */
export function oneOf<T extends string>(
  value: unknown,
  field: string,
  allowed: readonly T[],
  fallback: T,
): T {
  if (value === undefined) return fallback;
  if (!allowed.includes(value as T)) {
    throw new ConfigError(
      field,
      `must be one of ${allowed.map((a) => `'${a}'`).join(', ')} (got ${shown(value)})`,
    );
  }
  return value as T;
}

/** What of `ProducerOptions` the adapter calling {@link resolveProducerOptions} can do. */
export interface ProducerSupport {
  /** The adapter has an idempotent producer (Kafka). Default false: `idempotent: true` is refused. */
  idempotent?: boolean;
}

/**
 * Validates producer options: a `ConfigError` naming the field for a bad value or combination,
 * then an `UnsupportedError` for `idempotent: true` on a broker without `support.idempotent`.
 */
export function resolveProducerOptions(
  given?: ProducerOptions,
  support: ProducerSupport = {},
): ResolvedProducerOptions {
  const options = objectOption(given, 'producer') as ProducerOptions;
  refuseUnknownKeys(options, ['acks', 'timeoutMs', 'idempotent', 'onError'], 'producer.');
  const acks = oneOf(options.acks, 'producer.acks', ['all', 'leader', 'none'], 'all');
  if (options.idempotent !== undefined && typeof options.idempotent !== 'boolean') {
    throw new ConfigError('producer.idempotent', `must be true or false (got ${typeof options.idempotent})`);
  }
  if (options.onError !== undefined && typeof options.onError !== 'function') {
    throw new ConfigError('producer.onError', `must be a function (got ${typeof options.onError})`);
  }
  if (options.idempotent === true && acks !== 'all') {
    throw new ConfigError(
      'producer.idempotent',
      `requires acks 'all' (got acks '${acks}'); drop idempotent or set acks 'all'`,
    );
  }
  const timeoutMs = intOption(options.timeoutMs, 'producer.timeoutMs', 1, 30_000, MAX_TIMER_MS);
  if (options.idempotent === true && support.idempotent !== true) {
    throw new UnsupportedError(
      'producer.idempotent: only Kafka has an idempotent producer; on this broker drop the option or set it false',
    );
  }
  return {
    acks,
    timeoutMs,
    idempotent: support.idempotent === true && (options.idempotent ?? acks === 'all'),
    onError: options.onError,
  };
}

let broadcastSequence = 0;

export function resolveSubscribeOptions(options: SubscribeOptions<unknown>): ResolvedSubscribeOptions {
  if (!isPlainObject(options)) throw new ConfigError('subscribe', 'options object required');
  refuseUnknownKeys(
    options,
    [
      'topic',
      'group',
      'mode',
      'order',
      'concurrency',
      'tags',
      'startFrom',
      'retry',
      'deadLetter',
      'closeTimeoutMs',
      'batch',
    ],
    'subscribe.',
  );
  const topic = userTopicName(options.topic, 'subscribe.topic');
  const mode = oneOf(options.mode, 'subscribe.mode', ['clustering', 'broadcasting'], 'clustering');
  let group: string;
  if (mode === 'clustering') {
    if (options.group === undefined) {
      throw new ConfigError(
        'subscribe.group',
        "required in 'clustering' mode; name the consumer group, e.g. 'billing'",
      );
    }
    group = groupName(options.group, 'subscribe.group');
  } else {
    const prefix = options.group === undefined ? 'broadcast' : groupName(options.group, 'subscribe.group');
    group = `${prefix}.${process.pid}-${Date.now().toString(36)}-${++broadcastSequence}`;
  }

  let tags: Set<string> | undefined;
  if (options.tags !== undefined) {
    if (
      !Array.isArray(options.tags) ||
      options.tags.length === 0 ||
      options.tags.some((t) => typeof t !== 'string' || t === '')
    ) {
      throw new ConfigError(
        'subscribe.tags',
        'must be a non-empty array of non-empty strings; omit it to receive every tag',
      );
    }
    tags = new Set(options.tags);
  }

  let startFrom: ResolvedSubscribeOptions['startFrom'] = mode === 'broadcasting' ? 'latest' : 'earliest';
  const sf = options.startFrom;
  if (sf === 'earliest' || sf === 'latest') startFrom = sf;
  else if (typeof sf === 'object' && sf !== null && 'timestamp' in sf) {
    const ts = sf.timestamp instanceof Date ? sf.timestamp.getTime() : sf.timestamp;
    if (typeof ts !== 'number' || !Number.isFinite(ts) || ts < 0) {
      throw new ConfigError(
        'subscribe.startFrom.timestamp',
        'must be a Date or milliseconds since the epoch',
      );
    }
    startFrom = { timestamp: ts };
  } else if (sf !== undefined) {
    throw new ConfigError('subscribe.startFrom', "must be 'earliest', 'latest' or { timestamp }");
  }

  const retry: RetryOptions = objectOption(options.retry, 'subscribe.retry');
  refuseUnknownKeys(retry, ['attempts', 'backoff'], 'subscribe.retry.');
  const backoff: BackoffOptions = objectOption(retry.backoff, 'subscribe.retry.backoff');
  refuseUnknownKeys(backoff, ['initialMs', 'multiplier', 'maxMs'], 'subscribe.retry.backoff.');
  const initialMs = intOption(backoff.initialMs, 'subscribe.retry.backoff.initialMs', 0, 1000, MAX_TIMER_MS);
  const maxMs = intOption(backoff.maxMs, 'subscribe.retry.backoff.maxMs', 0, 60_000, MAX_TIMER_MS);
  if (maxMs < initialMs) {
    throw new ConfigError('subscribe.retry.backoff.maxMs', `must be >= initialMs (${initialMs})`);
  }
  const multiplier = backoff.multiplier ?? 2;
  if (typeof multiplier !== 'number' || !(multiplier >= 1 && multiplier <= MAX_BACKOFF_MULTIPLIER)) {
    throw new ConfigError(
      'subscribe.retry.backoff.multiplier',
      `must be a number from 1 to ${MAX_BACKOFF_MULTIPLIER} (got ${shown(multiplier)})`,
    );
  }

  let deadLetterTopic: string | undefined;
  const dl = options.deadLetter;
  if (dl === 'discard') deadLetterTopic = undefined;
  else if (dl === undefined) deadLetterTopic = `${topic}.${options.group ?? 'broadcast'}.dlq`;
  else if (isPlainObject(dl)) {
    refuseUnknownKeys(dl, ['topic'], 'subscribe.deadLetter.');
    deadLetterTopic =
      dl.topic === undefined
        ? `${topic}.${options.group ?? 'broadcast'}.dlq`
        : userTopicName(dl.topic as string, 'subscribe.deadLetter.topic');
  } else {
    throw new ConfigError('subscribe.deadLetter', "must be { topic? } or 'discard'");
  }
  // Topics derived from topic and group (`.dlq`, and Kafka's `.retry`) must stay within Kafka's
  // 249-character limit; caught here rather than at the first dead letter.
  const derived = `${topic}.${options.group ?? 'broadcast'}.retry`;
  if (derived.length > DERIVED_NAME_LIMIT) {
    throw new ConfigError(
      'subscribe.group',
      `topic and group names together are too long: '${derived.slice(0, 40)}...' (${derived.length} characters) exceeds ${DERIVED_NAME_LIMIT}; shorten the topic or group name`,
    );
  }
  if (deadLetterTopic === topic) {
    throw new ConfigError(
      'subscribe.deadLetter.topic',
      'must differ from the subscribed topic, or failures would loop',
    );
  }

  return {
    topic,
    spec: topicSpec(options.topic),
    group,
    mode,
    order: oneOf(options.order, 'subscribe.order', ['concurrent', 'key', 'partition'], 'key'),
    concurrency: intOption(options.concurrency, 'subscribe.concurrency', 1, 1, MAX_CONCURRENCY),
    tags,
    startFrom,
    retry: {
      attempts: intOption(retry.attempts, 'subscribe.retry.attempts', 1, 5, MAX_ATTEMPTS),
      initialMs,
      multiplier,
      maxMs,
    },
    deadLetterTopic,
    closeTimeoutMs: intOption(options.closeTimeoutMs, 'subscribe.closeTimeoutMs', 0, 30_000, MAX_TIMER_MS),
    batch: resolveBatch((options as Partial<BatchSubscribeOptions>).batch),
  };
}

function resolveBatch(given: BatchOptions | undefined): ResolvedSubscribeOptions['batch'] {
  if (given === undefined) return undefined;
  const batch: BatchOptions = objectOption(given, 'subscribe.batch');
  refuseUnknownKeys(batch, ['maxSize', 'maxWaitMs'], 'subscribe.batch.');
  return {
    maxSize: intOption(batch.maxSize, 'subscribe.batch.maxSize', 1, 100, MAX_BATCH_SIZE),
    maxWaitMs: intOption(batch.maxWaitMs, 'subscribe.batch.maxWaitMs', 0, 10, MAX_TIMER_MS),
  };
}

/** What every adapter's `subscribe` checks first: the options (resolved) and the handler. */
export function resolveSubscription<T>(
  options: SubscribeOptions<T>,
  handler: Handler<T> | BatchHandler<T>,
): { options: ResolvedSubscribeOptions; handler: Handler<unknown> | BatchHandler<unknown> } {
  const resolved = resolveSubscribeOptions(options as SubscribeOptions<unknown>);
  if (typeof handler !== 'function') throw new ConfigError('handler', 'must be a function');
  return { options: resolved, handler: handler as Handler<unknown> | BatchHandler<unknown> };
}

/** Delay before attempt `attempt + 1`, given the one that just failed (1-based). */
export function backoffDelay(retry: ResolvedSubscribeOptions['retry'], attempt: number): number {
  if (retry.initialMs === 0) return 0;
  const delay = retry.initialMs * retry.multiplier ** (attempt - 1);
  // multiplier ** attempts overflows to Infinity long before MAX_ATTEMPTS: that is maxMs too.
  return Number.isFinite(delay) ? Math.min(retry.maxMs, Math.round(delay)) : retry.maxMs;
}

/** Options of `Admin.ensureTopic`, validated: the (application) topic name and the partitions asked for. */
export function resolveEnsureTopic(
  topic: string,
  given: { partitions?: number } | undefined,
): { topic: string; partitions: number | undefined } {
  const name = userTopicName(topic, 'ensureTopic.topic');
  const options = objectOption(given, 'ensureTopic.options');
  refuseUnknownKeys(options, ['partitions'], 'ensureTopic.');
  const partitions =
    options.partitions === undefined
      ? undefined
      : intOption(options.partitions, 'ensureTopic.partitions', 1, 1, MAX_PARTITIONS);
  return { topic: name, partitions };
}

/**
 * Checks the options of `Subscription.close`; for its first line, so that a bad call is
 * refused without starting (or poisoning) the close: a rejected promise, or `undefined` when
 * the options are valid (`timeoutMs` absent, or an integer from 0 to {@link MAX_TIMER_MS}).
 */
export function refuseCloseOptions(given: unknown): Promise<never> | undefined {
  try {
    const options = objectOption(given, 'close.options');
    refuseUnknownKeys(options, ['timeoutMs'], 'close.');
    intOption(options.timeoutMs, 'close.timeoutMs', 0, 0, MAX_TIMER_MS);
    return undefined;
  } catch (error) {
    return Promise.reject(error);
  }
}

/**
 * A subscription's tags in one canonical string ('' for all tags), to compare members of a
 * group: members must subscribe to the same tags, because each filters what it owns.
 */
export function tagsKey(tags: ReadonlySet<string> | undefined): string {
  return tags === undefined ? '' : [...tags].sort().join(',');
}

/** The error for a member whose tags differ from those of its group's running members. */
export function otherTagsError(options: { topic: string; group: string }, cause?: unknown): ConfigError {
  return new ConfigError(
    'subscribe.tags',
    `group '${options.group}' of topic '${options.topic}' has running members subscribed to other tags; members of a group must subscribe to the same tags (or use another group name)`,
    cause === undefined ? undefined : { cause },
  );
}
