import { ConfigError } from '../../core/errors.js';
import {
  intOption,
  isPlainObject,
  MAX_PARTITIONS,
  MAX_TIMER_MS,
  refuseUnknownKeys,
  shown,
  topicName,
} from '../../core/options.js';
import { resolveTlsOptions, type TlsOptions } from '../../core/tls.js';

/** Options of the RabbitMQ adapter (`connect(url, { rabbitmq: { ... } })`). */
export interface RabbitMqBrokerOptions {
  /**
   * Type of group and partition queues. 'quorum' replicates them (use with acks 'all') and sets
   * `x-delivery-limit`, dead-lettering a message the broker redelivered that often. Broadcasting
   * queues stay classic (quorum queues cannot be exclusive). Default 'classic'.
   */
  queueType?: 'classic' | 'quorum';
  /** `x-delivery-limit` of quorum queues. Default 20. */
  deliveryLimit?: number;
  /** Partition queues of key-ordered groups on a topic never given a count by `ensureTopic`. Default 1, at most 4096. */
  partitions?: number;
  /**
   * Unacknowledged deliveries per consumer. Default max(2 × concurrency, 64), with a batch
   * handler max(2 × concurrency × batch.maxSize, 64); at most 65 535 (AMQP's prefetch count is 16 bits).
   */
  prefetch?: number;
  /**
   * Topics stored as RabbitMQ streams (`x-queue-type: stream`): they keep every message and
   * accept `startFrom: { timestamp }` and `'earliest'`. Each subscription reads the whole stream
   * itself (a stream has no competing consumers).
   */
  streams?: readonly string[];
  /**
   * Shown in the management UI (`connection_name` client property). Default `mqkit <pid>`.
   * A broker holds two connections: this name (consuming, acks, declarations) and
   * `<name> (publishing)`.
   */
  connectionName?: string;
  /**
   * Reconnect back-off after a lost connection. Default { initialMs: 100, maxMs: 5000 };
   * `initialMs` from 1, `maxMs` from `initialMs`, both at most {@link MAX_TIMER_MS}.
   */
  reconnect?: { initialMs?: number; maxMs?: number };
  /**
   * How often members of a key-ordered group announce themselves; a member silent for 3.5 times
   * this is considered gone and its partitions are reassigned. Default 1000 ms; 10 to
   * {@link MAX_TIMER_MS}.
   */
  memberHeartbeatMs?: number;
  /**
   * TLS options for `amqps://`: Node's `tls.connect` options (ca, cert, key, pfx, passphrase,
   * servername, rejectUnauthorized, minVersion, ...), except host, port, path, socket and
   * timeout, which come from the URL and `connectTimeoutMs`. Unknown keys are refused. The
   * URL's `tlsCaFile`, `tlsCertFile`, `tlsKeyFile` and `tlsServername` set `ca`, `cert`, `key`
   * and `servername` too; a key given here wins over the URL's. Refused with an `amqp://` URL.
   * Default: Node's defaults (the built-in CA list, the URL's host as the name to verify).
   */
  tls?: TlsOptions;
  /**
   * Bound of one connection attempt, the first one in `connect()` and every reconnect: the TCP
   * (and TLS) connect plus the AMQP handshake. `connect()` fails with a retriable
   * `ConnectionError` after this long, and the socket is destroyed. Default 10 000 ms; 1 to
   * {@link MAX_TIMER_MS}.
   */
  connectTimeoutMs?: number;
  /**
   * The rabbitmq_management HTTP API, e.g. `http://127.0.0.1:15672` (credentials: this URL's,
   * else the AMQP URL's). When set, `backlog` counts deliveries consumers hold unacknowledged
   * too (as the plugin last sampled them, up to 5 s old); AMQP alone sees ready messages only.
   * Default: not used.
   */
  managementUrl?: string;
  /**
   * How long a message that no group's binding takes (sent before any group subscribed, or
   * with a tag no group asked for) is held, in the topic's `mq.unrouted:<topic>` queue, for
   * groups created later. Default 7 days (Kafka's default retention). 0: hold nothing, and
   * refuse such a send with a non-retriable unroutable `PublishError` (RabbitMQ's `mandatory`).
   * Fixed when the topic's exchange is first declared: a topic declared with the other choice
   * keeps it.
   */
  holdUnroutedMs?: number;
}

export interface ResolvedRabbitMqOptions {
  queueType: 'classic' | 'quorum';
  deliveryLimit: number;
  partitions: number;
  prefetch: number | undefined;
  streams: ReadonlySet<string>;
  connectionName: string;
  reconnect: { initialMs: number; maxMs: number };
  memberHeartbeatMs: number;
  tls: TlsOptions | undefined;
  connectTimeoutMs: number;
  managementUrl: string | undefined;
  holdUnroutedMs: number;
}

const KEYS = [
  'queueType',
  'deliveryLimit',
  'partitions',
  'prefetch',
  'streams',
  'connectionName',
  'reconnect',
  'memberHeartbeatMs',
  'tls',
  'connectTimeoutMs',
  'managementUrl',
  'holdUnroutedMs',
];

export function resolveRabbitMqOptions(options: RabbitMqBrokerOptions = {}): ResolvedRabbitMqOptions {
  if (!isPlainObject(options)) throw new ConfigError('rabbitmq', 'must be an object');
  refuseUnknownKeys(options, KEYS, 'rabbitmq.');
  const queueType = options.queueType ?? 'classic';
  if (queueType !== 'classic' && queueType !== 'quorum') {
    throw new ConfigError('rabbitmq.queueType', `must be 'classic' or 'quorum' (got ${shown(queueType)})`);
  }
  const reconnect = options.reconnect ?? {};
  if (!isPlainObject(reconnect)) {
    throw new ConfigError('rabbitmq.reconnect', 'must be an object such as { initialMs: 100, maxMs: 5000 }');
  }
  refuseUnknownKeys(reconnect, ['initialMs', 'maxMs'], 'rabbitmq.reconnect.');
  const initialMs = intOption(reconnect.initialMs, 'rabbitmq.reconnect.initialMs', 1, 100, MAX_TIMER_MS);
  const maxMs = intOption(
    reconnect.maxMs,
    'rabbitmq.reconnect.maxMs',
    initialMs,
    Math.max(5000, initialMs),
    MAX_TIMER_MS,
  );
  if (options.streams !== undefined && !Array.isArray(options.streams)) {
    throw new ConfigError('rabbitmq.streams', 'must be an array of topic names');
  }
  const streams = new Set((options.streams ?? []).map((t, i) => topicName(t, `rabbitmq.streams.${i}`)));
  if (options.managementUrl !== undefined && typeof options.managementUrl !== 'string') {
    throw new ConfigError('rabbitmq.managementUrl', 'must be a string such as http://127.0.0.1:15672');
  }
  if (options.connectionName !== undefined && typeof options.connectionName !== 'string') {
    throw new ConfigError('rabbitmq.connectionName', 'must be a string');
  }
  const tls = options.tls === undefined ? undefined : resolveTlsOptions(options.tls, 'rabbitmq.tls');
  return {
    queueType,
    deliveryLimit: intOption(options.deliveryLimit, 'rabbitmq.deliveryLimit', 1, 20),
    partitions: intOption(options.partitions, 'rabbitmq.partitions', 1, 1, MAX_PARTITIONS),
    prefetch:
      options.prefetch === undefined
        ? undefined
        : intOption(options.prefetch, 'rabbitmq.prefetch', 1, 1, 65_535),
    streams,
    connectionName: options.connectionName ?? `mqkit ${process.pid}`,
    reconnect: { initialMs, maxMs },
    memberHeartbeatMs: intOption(
      options.memberHeartbeatMs,
      'rabbitmq.memberHeartbeatMs',
      10,
      1000,
      MAX_TIMER_MS,
    ),
    tls,
    connectTimeoutMs: intOption(
      options.connectTimeoutMs,
      'rabbitmq.connectTimeoutMs',
      1,
      10_000,
      MAX_TIMER_MS,
    ),
    managementUrl: options.managementUrl,
    // x-message-ttl is a 32-bit unsigned count of milliseconds on the broker.
    holdUnroutedMs: intOption(
      options.holdUnroutedMs,
      'rabbitmq.holdUnroutedMs',
      0,
      7 * 24 * 3600_000,
      2 ** 32 - 1,
    ),
  };
}

/** Prefetch of one consumer of a subscription with `concurrency` handlers. */
export function prefetchFor(options: ResolvedRabbitMqOptions, concurrency: number): number {
  return options.prefetch ?? Math.min(65_535, Math.max(concurrency * 2, 64));
}
