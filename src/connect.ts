import type { KafkaBrokerOptions } from './adapters/kafka/index.js';
import type { MemoryBrokerOptions } from './adapters/memory/index.js';
import type { Broker } from './core/broker.js';
import { ConfigError } from './core/errors.js';
import { isLogger, type Logger, processWarningLogger } from './core/logger.js';

/** What every adapter gets besides its own options. */
export interface AdapterContext {
  /** Where the adapter logs; never absent (the default is {@link processWarningLogger}). */
  logger: Logger;
}

/** Creates a broker connection for a URL. Adapters export one; register third-party ones with `registerAdapter`. */
export type AdapterFactory = (
  url: URL,
  options: object | undefined,
  context: AdapterContext,
) => Promise<Broker>;

/**
 * Built-in adapters, loaded on first use so a RabbitMQ-only service never loads kafkajs and the
 * other way round. Each entry also names the option key its adapter reads from `ConnectOptions`.
 */
const builtins: Record<string, { option: string; load: () => Promise<AdapterFactory> }> = {
  'memory:': {
    option: 'memory',
    load: async () => (await import('./adapters/memory/index.js')).createMemoryBroker as AdapterFactory,
  },
  'kafka:': {
    option: 'kafka',
    load: async () => (await import('./adapters/kafka/index.js')).createKafkaBroker as AdapterFactory,
  },
  'amqp:': {
    option: 'rabbitmq',
    load: async () => (await import('./adapters/rabbitmq/index.js')).createRabbitMqBroker as AdapterFactory,
  },
  'amqps:': {
    option: 'rabbitmq',
    load: async () => (await import('./adapters/rabbitmq/index.js')).createRabbitMqBroker as AdapterFactory,
  },
};

const registered = new Map<string, AdapterFactory>();

/** Registers an adapter for a URL scheme such as `'nats:'`. */
export function registerAdapter(scheme: string, factory: AdapterFactory): void {
  if (!/^[a-z][a-z0-9+.-]*:$/.test(scheme))
    throw new ConfigError('registerAdapter.scheme', "must look like 'name:'");
  registered.set(scheme, factory);
}

/** Options of `connect`; each adapter reads its own key and refuses keys it does not know. */
export interface ConnectOptions {
  /**
   * Where mqkit and the client libraries under it log (pino's shape). Default: warnings and
   * errors become Node process warnings (`process.emitWarning`), debug and info are dropped.
   */
  logger?: Logger;
  memory?: MemoryBrokerOptions;
  kafka?: KafkaBrokerOptions;
  [adapter: string]: object | Logger | undefined;
}

/**
 * Connects to the broker a URL names: `memory://[name]`, `kafka://h1:9092,h2:9092`,
 * `amqp://user:pass@host:5672/vhost` or `amqps://...`. Without a URL, `MQ_URL` is used, and
 * without that the embedded `memory://`.
 *
 * Throws `ConfigError` (bad URL or options, naming the field) or `ConnectionError`.
 */
export async function connect(url?: string, options: ConnectOptions = {}): Promise<Broker> {
  const text = url ?? process.env.MQ_URL ?? 'memory://';
  let parsed: URL;
  try {
    parsed = parseUrl(text);
  } catch (error) {
    throw new ConfigError(
      'url',
      `not a URL: ${JSON.stringify(redact(text))}; expected e.g. memory://, kafka://127.0.0.1:9092 or amqp://guest:guest@127.0.0.1:5672`,
      { cause: error },
    );
  }
  if (options.logger !== undefined && !isLogger(options.logger))
    throw new ConfigError('logger', 'must have debug, info, warn and error methods (a pino logger fits)');
  const context: AdapterContext = { logger: options.logger ?? processWarningLogger() };
  const custom = registered.get(parsed.protocol);
  if (custom) return custom(parsed, options[parsed.protocol.slice(0, -1)], context);
  const builtin = builtins[parsed.protocol];
  if (builtin === undefined) {
    const known = [...Object.keys(builtins), ...registered.keys()].join(' ');
    throw new ConfigError(
      'url',
      `unknown scheme ${parsed.protocol} in ${JSON.stringify(redact(text))}; use one of ${known}`,
    );
  }
  const factory = await builtin.load();
  return factory(parsed, options[builtin.option], context);
}

/**
 * `new URL` rejects a host list such as `kafka://h1:9092,h2:9092` (a port cannot hold a comma):
 * the colons of a multi-host authority are percent-encoded, so `url.host` reads
 * `h1%3A9092,h2%3A9092` and an adapter decodes it.
 */
function parseUrl(text: string): URL {
  const m = /^([a-z][a-z0-9+.-]*:\/\/)([^/?#]*)(.*)$/is.exec(text);
  if (m === null || !(m[2] as string).includes(',')) return new URL(text);
  const authority = m[2] as string;
  const at = authority.lastIndexOf('@') + 1;
  return new URL(`${m[1]}${authority.slice(0, at)}${authority.slice(at).replaceAll(':', '%3A')}${m[3]}`);
}

/** The URL with its password replaced, for error messages and logs. */
export function redact(url: string): string {
  return url.replace(/\/\/([^:/@]*):[^@/]*@/, '//$1:***@');
}
