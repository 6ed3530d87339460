import { ConfigError } from '../../core/errors.js';
import { intOption, intQueryParam, objectOption, refuseUnknownKeys } from '../../core/options.js';
import { safeDecode } from '../../core/redact.js';

/** Options of `rocketmq://` connections; `namesrv` and `awaitMs` are also URL query parameters. */
export interface RocketMqBrokerOptions {
  /**
   * `host:port` of the name server, for what the gRPC proxy does not offer: creating topics and
   * consumer groups, `startFrom`, and `backlog`. Default: the URL's `namesrv` query parameter;
   * without either, those calls are refused with `UnsupportedError` and topics must exist.
   */
  namesrv?: string;
  /** Timeout of one request to the proxy or the name server, ms. Default 10 000. */
  requestTimeoutMs?: number;
  /**
   * How long one receive long-polls the proxy, ms. Default 2 000. The proxy raises it to its
   * `grpcClientConsumerMinLongPollingTimeoutMillis` (5 000 by default), and a closing
   * subscription waits for the poll in flight, so that the messages it brings are released
   * rather than hidden for their invisible time.
   */
  awaitMs?: number;
  /**
   * How long a received message stays hidden from the group's other members, ms, from 10 000
   * (the proxy's minimum) to 43 200 000 (its maximum). It is renewed every half of it while the
   * message waits in prefetch, runs or waits for a retry, so it bounds how long the messages of
   * a member that died stay hidden. Default: max(30 000, 2 × closeTimeoutMs, 2 × retry.maxMs)
   * of the subscription, at most 43 200 000.
   */
  invisibleMs?: number;
  /**
   * RocketMQ namespace (ACL tenants). Default ''. Refused together with `namesrv`: the admin
   * calls do not apply namespaces (nor sign their requests for ACL).
   */
  namespace?: string;
}

export interface ResolvedRocketMqOptions {
  endpoints: string;
  namesrv: string | undefined;
  requestTimeoutMs: number;
  awaitMs: number;
  invisibleMs: number | undefined;
  namespace: string;
  /** From the URL's user info: access key and secret (ACL). */
  credentials: { accessKey: string; accessSecret: string } | undefined;
}

const HOST_PORT = /^[A-Za-z0-9.-]+:\d{1,5}$/;

/** Validates the URL (`rocketmq://[accessKey:secret@]host:port[?namesrv=host:port&awaitMs=n]`) and options. */
export function resolveRocketMqOptions(url: URL, given?: RocketMqBrokerOptions): ResolvedRocketMqOptions {
  const options = objectOption(given, 'rocketmq') as RocketMqBrokerOptions;
  refuseUnknownKeys(
    options,
    ['namesrv', 'requestTimeoutMs', 'awaitMs', 'invisibleMs', 'namespace'],
    'rocketmq.',
  );
  const query = Object.fromEntries(url.searchParams);
  refuseUnknownKeys(query, ['namesrv', 'awaitMs'], 'rocketmq:// query parameter ');
  if (url.hostname === '') throw new ConfigError('url', 'rocketmq:// needs host:port of the proxy (gRPC)');
  const endpoints = `${url.hostname}:${url.port || '8081'}`;
  const namesrv = options.namesrv ?? query.namesrv;
  if (namesrv !== undefined && (typeof namesrv !== 'string' || !HOST_PORT.test(namesrv)))
    throw new ConfigError(
      options.namesrv === undefined ? 'rocketmq:// query parameter namesrv' : 'rocketmq.namesrv',
      'must be host:port',
    );
  if (
    options.namespace !== undefined &&
    (typeof options.namespace !== 'string' || !/^[A-Za-z0-9_-]*$/.test(options.namespace))
  )
    throw new ConfigError('rocketmq.namespace', 'must be letters, digits, _ and -');
  // The admin calls (remoting) name topics and groups without the namespace: with both, topics
  // would be created and offsets read under other names than the proxy uses.
  if (options.namespace !== undefined && options.namespace !== '' && namesrv !== undefined)
    throw new ConfigError(
      'rocketmq.namespace',
      'cannot be used with namesrv (the admin calls do not apply namespaces): create topics and groups elsewhere and leave namesrv out',
    );
  const awaitMs =
    options.awaitMs === undefined
      ? intQueryParam(query.awaitMs, 'rocketmq:// query parameter awaitMs', 100, 2000, 60_000)
      : intOption(options.awaitMs, 'rocketmq.awaitMs', 100, 2000, 60_000);
  return {
    endpoints,
    namesrv,
    requestTimeoutMs: intOption(options.requestTimeoutMs, 'rocketmq.requestTimeoutMs', 100, 10_000, 600_000),
    awaitMs,
    invisibleMs:
      options.invisibleMs === undefined
        ? undefined
        : intOption(options.invisibleMs, 'rocketmq.invisibleMs', 10_000, 30_000, 43_200_000),
    namespace: options.namespace ?? '',
    credentials:
      url.username === ''
        ? undefined
        : { accessKey: safeDecode(url.username), accessSecret: safeDecode(url.password) },
  };
}
