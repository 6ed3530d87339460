import type { KafkaBrokerOptions } from './adapters/kafka/index.js';
import type { MemoryBrokerOptions } from './adapters/memory/index.js';
import type { RabbitMqBrokerOptions } from './adapters/rabbitmq/index.js';
import type { RocketMqBrokerOptions } from './adapters/rocketmq/index.js';
import { type AdapterContext, defaultAdapterContext } from './core/adapter-context.js';
import type { Broker } from './core/broker.js';
import { ConfigError } from './core/errors.js';
import { isLogger, type Logger } from './core/logger.js';
import { isPlainObject } from './core/options.js';
import { redact } from './core/redact.js';

export type { AdapterContext };

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
  'rocketmq:': {
    option: 'rocketmq',
    load: async () => (await import('./adapters/rocketmq/index.js')).createRocketMqBroker as AdapterFactory,
  },
};

const registered = new Map<string, AdapterFactory>();

/** Registers an adapter for a URL scheme such as `'nats:'`. */
export function registerAdapter(scheme: string, factory: AdapterFactory): void {
  if (!/^[a-z][a-z0-9+.-]*:$/.test(scheme))
    throw new ConfigError('registerAdapter.scheme', "must look like 'name:'");
  registered.set(scheme, factory);
}

/**
 * Options of `connect`: `logger`, and one key per adapter (`memory`, `kafka`, `rabbitmq`, or a
 * registered adapter's scheme name without the colon, e.g. `nats`). Any other key is refused
 * with a `ConfigError`, and each adapter refuses keys of its own options it does not know.
 */
export interface ConnectOptions {
  /**
   * Where mqkit and the client libraries under it log (pino's shape). Default: warnings and
   * errors become Node process warnings (`process.emitWarning`), debug and info are dropped.
   */
  logger?: Logger;
  memory?: MemoryBrokerOptions;
  kafka?: KafkaBrokerOptions;
  /** Options of `amqp://` and `amqps://` connections. */
  rabbitmq?: RabbitMqBrokerOptions;
  /** Options of `rocketmq://` connections. */
  rocketmq?: RocketMqBrokerOptions;
  /** Options of a registered adapter, under its scheme name. */
  [adapter: string]: object | Logger | undefined;
}

/** The option keys of the built-in adapters, known whether or not their URL is used. */
const BUILTIN_OPTION_KEYS = ['memory', 'kafka', 'rabbitmq', 'rocketmq'];

/**
 * Connects to the broker a URL names: `memory://[name]`, `kafka://h1:9092,h2:9092`,
 * `amqp://user:pass@host:5672/vhost` or `amqps://...`. Without a URL, `MQ_URL` is used, and
 * without that the embedded `memory://`.
 *
 * Throws `ConfigError` (bad URL or options, naming the field) or `ConnectionError`.
 */
export async function connect(url?: string, options: ConnectOptions = {}): Promise<Broker> {
  const text = url ?? process.env.MQ_URL ?? 'memory://';
  if (typeof text !== 'string') throw new ConfigError('url', `must be a string (got ${typeof text})`);
  let parsed: URL;
  try {
    parsed = parseUrl(text);
  } catch {
    // No cause: the URL parser's TypeError carries the whole input, password included.
    throw new ConfigError(
      'url',
      `not a URL: ${JSON.stringify(redact(text))}; expected e.g. memory://, kafka://127.0.0.1:9092 or amqp://guest:guest@127.0.0.1:5672 (percent-encode reserved characters such as / @ : in a password)`,
    );
  }
  if (!isPlainObject(options)) throw new ConfigError('connect.options', 'must be an options object');
  for (const key of Object.keys(options)) {
    if (key === 'logger' || BUILTIN_OPTION_KEYS.includes(key) || registered.has(`${key}:`)) {
      if (key !== 'logger' && options[key] !== undefined && !isPlainObject(options[key]))
        throw new ConfigError(key, 'must be an options object');
      continue;
    }
    const known = ['logger', ...BUILTIN_OPTION_KEYS, ...[...registered.keys()].map((s) => s.slice(0, -1))];
    throw new ConfigError(key, `unknown option; expected one of ${known.join(', ')}`);
  }
  if (options.logger !== undefined && !isLogger(options.logger))
    throw new ConfigError('logger', 'must have debug, info, warn and error methods (a pino logger fits)');
  const context = defaultAdapterContext(options.logger);
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
  if (parsed.protocol !== 'memory:' && parsed.host === '')
    throw new ConfigError(
      'url',
      `needs a host, as in ${parsed.protocol}//host:port (got ${JSON.stringify(redact(text))})`,
    );
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
