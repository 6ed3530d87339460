import { ConfigError } from '../../core/errors.js';
import { intOption, MAX_TIMER_MS, oneOf, refuseUnknownKeys, shown, topicName } from '../../core/options.js';
import {
  mergeTls,
  resolveTlsOptions,
  TLS_QUERY_PARAMS,
  type TlsOptions,
  tlsFromQuery,
} from '../../core/tls.js';
import type { Compression, KafkaClientConfig } from './client.js';

/**
 * Options of the Kafka adapter (`connect(url, { kafka: {...} })`). Every field is optional.
 * `clientId`, `ssl`, `saslMechanism` and `logLevel` can also be URL query parameters, SASL
 * credentials the URL's user info, and TLS files `tlsCaFile`, `tlsCertFile`, `tlsKeyFile` and
 * the name `tlsServername` query parameters too:
 * `kafka://user:pass@h1:9093,h2:9093?ssl=true&saslMechanism=scram-sha-512&tlsCaFile=/etc/kafka/ca.pem`.
 * An option given here wins over the URL's.
 */
export interface KafkaBrokerOptions {
  /** Sent to the brokers with every request. Default 'mqkit'. */
  clientId?: string;
  /**
   * TLS to the brokers (Kafka's `SSL` and `SASL_SSL` listeners). `true`: TLS with Node's
   * defaults (the built-in CA list, each broker's advertised host as the name to verify). An
   * object: TLS with these `tls.connect` options (`ca`, `cert` and `key` for mutual TLS,
   * `passphrase`, `servername`, `rejectUnauthorized`, ...; host, port, socket and timeout
   * are refused), each over the URL's `tlsCaFile` (ca), `tlsCertFile` (cert), `tlsKeyFile`
   * (key) and `tlsServername` (servername), which turn TLS on by themselves. `false` with
   * any of them is refused. Default false.
   */
  ssl?: boolean | TlsOptions;
  /**
   * SASL authentication (on a `SASL_SSL` or `SASL_PLAINTEXT` listener). Default: none, or the
   * URL's user info with its `saslMechanism` (default 'plain'). Given here, it replaces the URL's.
   */
  sasl?: { mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512'; username: string; password: string };
  /** How long opening a TCP (and TLS) connection to a broker may take. Default 3000 ms. */
  connectionTimeoutMs?: number;
  /**
   * How long each request of a connection's handshake (API versions, SASL handshake and
   * authentication) may wait for its answer when `connect` first reaches the cluster. Default
   * 10 000 ms. `connect` tries the bootstrap brokers 3 times, so it settles within about
   * `3 × (connectionTimeoutMs + authenticationTimeoutMs)` plus 1 s
   * of back-off (a refused port fails in well under a second), with a `ConnectionError`; a
   * broker that answers the handshake and then goes silent adds up to 3 × `authenticationTimeoutMs`
   * for the metadata request that follows it.
   */
  authenticationTimeoutMs?: number;
  /** How long any later request may wait for its answer. Default 30 000 ms. */
  requestTimeoutMs?: number;
  /** Partition metadata is re-read this often; consumers see added partitions after it. Default 300 000 ms. */
  metadataMaxAgeMs?: number;
  /**
   * kafkajs's own log lines at this level and above go to the connection's logger (`connect`'s
   * `logger` option), each as one `debug` line with kafkajs's fields (never a stack, unless
   * 'debug'); errors that matter are thrown or reported by mqkit itself. Default 'error'.
   */
  logLevel?: 'nothing' | 'error' | 'warn' | 'info' | 'debug';
  producer?: {
    /**
     * How long `send` waits for more sends to share its produce request. Default 0: sends made
     * in the same tick, and those made while a request is in flight, share the next one.
     */
    lingerMs?: number;
    /** Most records per produce request made of coalesced `send` calls. Default 1000. */
    batchSize?: number;
    /**
     * Default 'none'. 'gzip' is built in; 'snappy', 'lz4' and 'zstd' need a codec registered
     * with kafkajs's `CompressionCodecs` before connecting.
     */
    compression?: Compression;
  };
  consumer?: {
    /** A member not heard from for this long is removed from its group. Default 30 000 ms. */
    sessionTimeoutMs?: number;
    /** Heartbeat period; also how soon a member notices a rebalance. Default 500 ms. */
    heartbeatIntervalMs?: number;
    /** How long the group waits for members to rejoin in a rebalance. Default 60 000 ms. */
    rebalanceTimeoutMs?: number;
    /** Longest wait of a fetch for new records. Default 200 ms. */
    maxWaitTimeMs?: number;
    /** Bytes fetched per partition per request. Default 1 MiB. */
    maxBytesPerPartition?: number;
    /**
     * Records fetched ahead per partition and not yet committable; the partition is paused at
     * this many and resumed at half. Default 10 000.
     */
    prefetch?: number;
    /** Finished offsets are committed at most this often. Default 100 ms. */
    commitIntervalMs?: number;
  };
  delay?: {
    /** Prefix of the delay-tier topics and of the group that forwards them. Default 'mq.delay'. */
    topicPrefix?: string;
    /**
     * Run a forwarder of the delay tiers on this connection once it sends a delayed message or
     * subscribes. Default true. At least one running process must forward.
     */
    forward?: boolean;
  };
}

export interface ResolvedKafkaOptions {
  client: KafkaClientConfig;
  producer: { lingerMs: number; batchSize: number; compression: Compression };
  consumer: {
    sessionTimeoutMs: number;
    heartbeatIntervalMs: number;
    rebalanceTimeoutMs: number;
    maxWaitTimeMs: number;
    maxBytesPerPartition: number;
    prefetch: number;
    commitIntervalMs: number;
  };
  delay: { topicPrefix: string; forward: boolean };
}

const LOG_LEVELS = ['nothing', 'error', 'warn', 'info', 'debug'] as const;
const MECHANISMS = ['plain', 'scram-sha-256', 'scram-sha-512'] as const;
const COMPRESSIONS = ['none', 'gzip', 'snappy', 'lz4', 'zstd'] as const;

/** Reads `kafka://[user:pass@]h1:9092,h2:9092[?query]` and the options; options win over the URL. */
export function resolveKafkaOptions(url: URL, options: KafkaBrokerOptions = {}): ResolvedKafkaOptions {
  if (typeof options !== 'object' || options === null || Array.isArray(options))
    throw new ConfigError('kafka', 'must be an object');
  refuseUnknownKeys(
    options,
    [
      'clientId',
      'ssl',
      'sasl',
      'connectionTimeoutMs',
      'authenticationTimeoutMs',
      'requestTimeoutMs',
      'metadataMaxAgeMs',
      'logLevel',
      'producer',
      'consumer',
      'delay',
    ],
    'kafka.',
  );
  const query = Object.fromEntries(url.searchParams);
  refuseUnknownKeys(
    query,
    ['clientId', 'ssl', 'saslMechanism', 'logLevel', ...Object.keys(TLS_QUERY_PARAMS)],
    'kafka:// query parameter ',
  );

  const hosts = decoded(url.host, 'url', 'host');
  if (hosts === '') {
    throw new ConfigError('url', 'names no broker; expected kafka://host:port[,host:port...]');
  }
  const brokers = hosts.split(',').map((h) => {
    const host = h.trim();
    if (!/^(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(:\d{1,5})?$/.test(host)) {
      throw new ConfigError('url', `bad broker address ${JSON.stringify(host)}; expected host:port`);
    }
    return /:\d+$/.test(host) ? host : `${host}:9092`;
  });

  let sasl = options.sasl;
  if (sasl !== undefined) {
    if (typeof sasl !== 'object' || sasl === null || Array.isArray(sasl))
      throw new ConfigError('kafka.sasl', 'must be an object');
    refuseUnknownKeys(sasl, ['mechanism', 'username', 'password'], 'kafka.sasl.');
    oneOf(sasl.mechanism, 'kafka.sasl.mechanism', MECHANISMS, 'plain');
    // The password's value never goes into a message.
    if (typeof sasl.username !== 'string') throw new ConfigError('kafka.sasl.username', 'must be a string');
    if (typeof sasl.password !== 'string') throw new ConfigError('kafka.sasl.password', 'must be a string');
  } else if (url.username !== '' || url.password !== '') {
    sasl = {
      mechanism: oneOf(query.saslMechanism, 'kafka:// query parameter saslMechanism', MECHANISMS, 'plain'),
      username: decoded(url.username, 'url', 'user name'),
      password: decoded(url.password, 'url', 'password'),
    };
  }

  if (sasl === undefined && query.saslMechanism !== undefined) {
    throw new ConfigError(
      'kafka:// query parameter saslMechanism',
      'needs a user name and password in the URL (kafka://user:password@host:port) or kafka.sasl',
    );
  }

  const ssl = resolveSsl(options.ssl, query);

  const producer = section(options.producer, 'producer', ['lingerMs', 'batchSize', 'compression']);
  const consumer = section(options.consumer, 'consumer', [
    'sessionTimeoutMs',
    'heartbeatIntervalMs',
    'rebalanceTimeoutMs',
    'maxWaitTimeMs',
    'maxBytesPerPartition',
    'prefetch',
    'commitIntervalMs',
  ]);
  const delay = section(options.delay, 'delay', ['topicPrefix', 'forward']);

  const sessionTimeoutMs = intOption(
    consumer.sessionTimeoutMs,
    'kafka.consumer.sessionTimeoutMs',
    6000, // the broker's default group.min.session.timeout.ms
    30_000,
    MAX_TIMER_MS,
  );
  const heartbeatIntervalMs = intOption(
    consumer.heartbeatIntervalMs,
    'kafka.consumer.heartbeatIntervalMs',
    10,
    500,
    MAX_TIMER_MS,
  );
  if (heartbeatIntervalMs * 3 > sessionTimeoutMs) {
    throw new ConfigError(
      'kafka.consumer.heartbeatIntervalMs',
      `must be at most a third of sessionTimeoutMs (${sessionTimeoutMs})`,
    );
  }
  const topicPrefix =
    delay.topicPrefix === undefined
      ? 'mq.delay'
      : topicName(delay.topicPrefix as string, 'kafka.delay.topicPrefix');

  return {
    client: {
      brokers,
      clientId: str(options.clientId ?? query.clientId, 'kafka.clientId', 'mqkit'),
      ssl,
      sasl,
      connectionTimeoutMs: intOption(
        options.connectionTimeoutMs,
        'kafka.connectionTimeoutMs',
        1,
        3000,
        MAX_TIMER_MS,
      ),
      authenticationTimeoutMs: intOption(
        options.authenticationTimeoutMs,
        'kafka.authenticationTimeoutMs',
        1,
        10_000,
        MAX_TIMER_MS,
      ),
      requestTimeoutMs: intOption(
        options.requestTimeoutMs,
        'kafka.requestTimeoutMs',
        1,
        30_000,
        MAX_TIMER_MS,
      ),
      metadataMaxAgeMs: intOption(
        options.metadataMaxAgeMs,
        'kafka.metadataMaxAgeMs',
        0,
        300_000,
        MAX_TIMER_MS,
      ),
      logLevel: oneOf(options.logLevel ?? query.logLevel, 'kafka.logLevel', LOG_LEVELS, 'error'),
    },
    producer: {
      lingerMs: intOption(producer.lingerMs, 'kafka.producer.lingerMs', 0, 0, MAX_TIMER_MS),
      batchSize: intOption(producer.batchSize, 'kafka.producer.batchSize', 1, 1000),
      compression: oneOf(producer.compression, 'kafka.producer.compression', COMPRESSIONS, 'none'),
    },
    consumer: {
      sessionTimeoutMs,
      heartbeatIntervalMs,
      rebalanceTimeoutMs: intOption(
        consumer.rebalanceTimeoutMs,
        'kafka.consumer.rebalanceTimeoutMs',
        1000,
        60_000,
        MAX_TIMER_MS,
      ),
      maxWaitTimeMs: intOption(consumer.maxWaitTimeMs, 'kafka.consumer.maxWaitTimeMs', 0, 200, MAX_TIMER_MS),
      maxBytesPerPartition: intOption(
        consumer.maxBytesPerPartition,
        'kafka.consumer.maxBytesPerPartition',
        1024,
        1 << 20,
      ),
      prefetch: intOption(consumer.prefetch, 'kafka.consumer.prefetch', 1, 10_000),
      commitIntervalMs: intOption(
        consumer.commitIntervalMs,
        'kafka.consumer.commitIntervalMs',
        0,
        100,
        MAX_TIMER_MS,
      ),
    },
    delay: { topicPrefix, forward: bool(delay.forward, 'kafka.delay.forward', true) },
  };
}

/**
 * `kafka.ssl` over the URL's `ssl` and TLS file parameters: false, true (Node's defaults) or
 * the `tls.connect` options, the URL's files read here.
 */
function resolveSsl(option: unknown, query: Readonly<Record<string, string>>): boolean | TlsOptions {
  const where = 'kafka:// query parameter ';
  const fromOption =
    typeof option === 'object' && option !== null ? resolveTlsOptions(option, 'kafka.ssl') : undefined;
  if (option !== undefined && typeof option !== 'boolean' && fromOption === undefined) {
    // Only the type: a string here may well be a PEM key passed in the wrong place.
    throw new ConfigError(
      'kafka.ssl',
      `must be true, false or an object of tls.connect options such as { ca } (got ${option === null ? 'null' : `a ${typeof option}`})`,
    );
  }
  const flag = typeof option === 'boolean' ? option : fromOption !== undefined ? true : undefined;
  const urlFlag = bool(query.ssl, `${where}ssl`, undefined);
  const params = Object.keys(TLS_QUERY_PARAMS).filter((param) => query[param] !== undefined);
  const on = flag ?? urlFlag ?? params.length > 0;
  if (!on) {
    if (params.length > 0) {
      throw new ConfigError(
        flag === false ? 'kafka.ssl' : `${where}ssl`,
        `is false, but the URL sets TLS with ${params.join(', ')}; remove one or the other`,
      );
    }
    return false;
  }
  const fromUrl = tlsFromQuery(query, where);
  if (fromUrl === undefined && fromOption === undefined) return true;
  return mergeTls(fromUrl, fromOption, 'kafka.ssl', where);
}

function section<K extends string>(
  value: Partial<Record<K, unknown>> | undefined,
  name: string,
  keys: readonly K[],
): Partial<Record<K, unknown>> {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new ConfigError(`kafka.${name}`, 'must be an object');
  refuseUnknownKeys(value, keys, `kafka.${name}.`);
  return value;
}

/**
 * A percent-decoded URL part. A malformed escape (`%zz`) is a `ConfigError` that shows neither
 * the part nor the decoder's error, since the part may be a password.
 */
function decoded(part: string, field: string, what: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new ConfigError(field, `the ${what} has a malformed percent escape; encode '%' as %25`);
  }
}

function bool<F extends boolean | undefined>(value: unknown, field: string, fallback: F): boolean | F {
  if (value === undefined) return fallback;
  if (value === true || value === 'true') return true;
  if (value === false || value === 'false') return false;
  throw new ConfigError(field, `must be true or false (got ${shown(value)})`);
}

function str(value: unknown, field: string, fallback: string): string {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || value === '') throw new ConfigError(field, 'must be a non-empty string');
  return value;
}
