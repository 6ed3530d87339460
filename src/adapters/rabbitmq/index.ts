/**
 * RabbitMQ adapter (amqplib).
 *
 * ## Topology (all declared idempotently, again after every reconnect)
 *
 * | name | kind | what |
 * |---|---|---|
 * | `<topic>` | durable topic exchange | producers publish here; routing key = the tag, `''` untagged |
 * | `<topic>:<group>` | durable queue | order 'concurrent' group: its members compete on it; bound with `#` (all) or one binding per tag |
 * | `<topic>:<group>:hash` | durable `x-consistent-hash` exchange | order 'key' / 'partition' group: bound to the topic exchange like a queue, hashes header `mq-hash` |
 * | `<topic>:<group>:p<i>` | durable queues, `x-single-active-consumer` | the group's partition queues, weight 1 each; partition number = i |
 * | `<topic>:<group>:members` | durable fanout exchange | members of an ordered group announce themselves (`hello`/`here`/`bye`) through exclusive queues |
 * | `<topic>:<group>.<pid>-<time>-<n>` | exclusive auto-delete queue | a broadcasting subscription's own queue, gone with it |
 * | `<topic>` (queue) | durable queue bound `#` | on a dead-letter topic: keeps every dead letter even before anyone subscribed; on a stream topic: the stream (`x-queue-type: stream`) |
 * | `mq.meta:<topic>:partitions` | durable queue | its message count is the topic's partition count (raised under the exclusive queue `mq.meta:<topic>:lock`) |
 * | `mq.delay:<ms>` | fanout exchange + queue with `x-message-ttl` = ms | delay tiers, ms = 8·2^k (8 ms … ~24.8 days) |
 * | `mq.delay:<ms>:next` | headers exchange | the tier's dead-letter exchange: routes on `mq-delay-<ms>` to the next tier, the topic exchange or a group queue |
 *
 * Names longer than 255 bytes are cut to 200 characters plus `~` and a hash. Queue arguments
 * (queue type, delivery limit, dead-letter exchange) are fixed when a queue is first declared:
 * changing them, or a group's order (which changes its topology), needs the old queue deleted.
 *
 * Fan-out: every group has its own queue(s) bound to the topic exchange, so each group gets
 * every message (filtered by tag in the broker), and members of one group share them.
 *
 * Order 'key' / 'partition': the consistent-hash exchange sends one key to one partition queue.
 * Partition queues are spread over the group's members (partition p to member p mod M, members
 * sorted by id); single-active-consumer guarantees one consumer at a time per queue whatever
 * the members believe. A member hands a partition over only after its handlers on it finished
 * and were acked, then closes that channel, which requeues the rest in order. Partition numbers
 * come from RabbitMQ's hash, not murmur2: a key's partition number differs from Kafka's.
 * Raising the partition count adds queues; keys that move have no order across the move.
 *
 * ## Messages
 *
 * | mqkit | AMQP |
 * |---|---|
 * | id | `messageId` property |
 * | content type | `contentType` property |
 * | produce time | `timestamp` property (seconds); delayed and retried copies also carry `mq-timestamp` (ms) |
 * | acks 'all' | `deliveryMode` 2 (persistent), publisher confirm; 'leader': transient, confirm; 'none': transient, plain channel |
 * | key | header `mq-key`; `mq-hash` = the key (or a rotating token when unkeyed) feeds the consistent hash |
 * | tag | header `mq-tag` and the routing key |
 * | attempt | header `mq-attempt` on retried copies (with `mq-target-topic` / `mq-target-group`), plus `x-delivery-count` on quorum queues |
 * | dead letter | headers `mq-error-code`, `mq-error-name`, `mq-error-message`, `mq-original-topic`, `mq-original-group`, `mq-original-partition`, `mq-attempt`, `mq-failed-at` |
 * | application headers | AMQP headers of the same name (string values) |
 *
 * A plain AMQP client reads mqkit's messages by binding a queue to `<topic>`; mqkit reads a
 * plain client's messages published to `<topic>` (no `messageId`: de-duplication by id is then
 * impossible; no `contentType`: the body is read as JSON).
 *
 * ## Delivery, retries, dead letters
 *
 * Manual acks after the handler resolved, prefetch max(2 × concurrency, 64) per consumer, acks
 * batched with `multiple` over runs of finished deliveries. Delays (delayed sends and retry
 * back-off) are rounded up to 8 ms and split into distinct power-of-two tiers, which the copy
 * passes through one after another; it is never delivered early. Dead-lettering from a tier is
 * RabbitMQ's at-most-once: a broker crash at that moment can lose a delayed copy. A retried
 * copy goes only to the failing subscription's queue. Ordered subscriptions retry in process,
 * holding the key; if the process dies meanwhile, the message is redelivered (on classic
 * queues the attempt count then starts over). Exhausted or undecodable messages are published
 * to the dead-letter topic `<topic>.<group>.dlq` (an mqkit topic like any other) with the error
 * in headers, confirmed, and only then acked.
 *
 * Stream topics (option `streams`) accept `startFrom: { timestamp }`; every subscription reads
 * the stream on its own, from `startFrom`, resuming after a reconnect where it left off. Other
 * topics refuse a timestamp with `UnsupportedError`.
 *
 * Reconnect: after a dropped connection or broker restart the adapter reconnects with back-off,
 * declares the topology again and resumes consumers. Publishes not confirmed when the connection
 * dropped are published again in order (possible duplicates), or fail with a retriable
 * `TimeoutError` once `timeoutMs` passed; a send never resolves unless the broker confirmed it.
 * While the broker blocks publishing (memory or disk alarm), publishes wait instead of piling up
 * and time out with a retriable `TimeoutError`. Publishes use a connection of their own, so an
 * alarm never stops consumers from acking and draining the queues.
 *
 * @module
 */
import { type AdapterContext, defaultAdapterContext } from '../../core/adapter-context.js';
import type { Broker } from '../../core/broker.js';
import { ConfigError } from '../../core/errors.js';
import { mergeTls, TLS_QUERY_PARAMS, tlsFromQuery } from '../../core/tls.js';
import { RabbitMqBroker } from './broker.js';
import { RabbitConnection } from './connection.js';
import { ManagementApi } from './management.js';
import { type RabbitMqBrokerOptions, resolveRabbitMqOptions } from './options.js';

export { rabbitMqCapabilities } from './capabilities.js';
export type { RabbitMqBrokerOptions } from './options.js';

/**
 * Connects to RabbitMQ at `amqp://user:pass@host:port/vhost` (or `amqps://`). amqplib's own
 * URL query parameters (`heartbeat`, `frameMax`, `channelMax`) are passed through; the
 * heartbeat defaults to 10 s. `amqps://` also takes `tlsCaFile`, `tlsCertFile`, `tlsKeyFile`
 * and `tlsServername` (see `rabbitmq.tls`). Throws `ConfigError` for bad options (TLS settings
 * with an `amqp://` URL too) and `ConnectionError` when the first connection attempt fails or
 * takes longer than `rabbitmq.connectTimeoutMs` (default 10 s): retriable for a refused port or
 * a timeout, not retriable for refused credentials, an unknown virtual host or a TLS failure
 * (untrusted certificate, host name mismatch, client certificate refused).
 */
export async function createRabbitMqBroker(
  url: URL,
  options?: RabbitMqBrokerOptions,
  context: AdapterContext = defaultAdapterContext(),
): Promise<Broker> {
  if (url.protocol !== 'amqp:' && url.protocol !== 'amqps:') {
    throw new ConfigError('url', `expected amqp:// or amqps://, got ${url.protocol}//`);
  }
  for (const [part, text] of [
    ['user name', url.username],
    ['password', url.password],
    ['virtual host', url.pathname],
  ] as const) {
    try {
      decodeURIComponent(text);
    } catch {
      // amqplib decodes these and would throw a bare URIError.
      throw new ConfigError('url', `the ${part} in the URL has a malformed %-escape; write % as %25`);
    }
  }
  const resolved = resolveRabbitMqOptions(options);
  for (const param of url.searchParams.keys()) {
    // amqplib ignores query parameters it does not know: a misspelt one would drop a CA unseen.
    if (/^tls/i.test(param) && !Object.hasOwn(TLS_QUERY_PARAMS, param)) {
      throw new ConfigError(
        `${url.protocol}// query parameter ${param}`,
        `is not a TLS parameter; the known ones are ${Object.keys(TLS_QUERY_PARAMS).join(', ')} (names are case-sensitive)`,
      );
    }
  }
  const tlsParams = Object.keys(TLS_QUERY_PARAMS).filter((param) => url.searchParams.has(param));
  if (url.protocol === 'amqp:') {
    if (tlsParams.length > 0)
      throw new ConfigError(
        `amqp:// query parameter ${tlsParams[0]}`,
        'sets TLS, which needs an amqps:// URL',
      );
    if (resolved.tls !== undefined)
      throw new ConfigError('rabbitmq.tls', 'sets TLS, which needs an amqps:// URL (this one is amqp://)');
  }
  // The URL's TLS files first, each key of rabbitmq.tls over them; amqplib gets the URL without them.
  const where = 'amqps:// query parameter ';
  const fromUrl = tlsFromQuery(Object.fromEntries(url.searchParams), where);
  if (fromUrl !== undefined || resolved.tls !== undefined)
    resolved.tls = mergeTls(fromUrl, resolved.tls, 'rabbitmq.tls', where);
  const target = new URL(url.href);
  for (const param of tlsParams) target.searchParams.delete(param);
  const management =
    resolved.managementUrl === undefined ? undefined : ManagementApi.from(resolved.managementUrl, url);
  const connection = await RabbitConnection.open(target, resolved, 'consuming', context.logger);
  try {
    const publishing = await RabbitConnection.open(target, resolved, 'publishing', context.logger);
    return new RabbitMqBroker(connection, publishing, resolved, context.logger, context.events, management);
  } catch (error) {
    await connection.close();
    throw error;
  }
}
