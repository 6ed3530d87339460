/**
 * The Kafka adapter: `kafka://h1:9092,h2:9092` on kafkajs, behind the client seam in `client.ts`
 * (the files of `kafkajs/` are the only ones that import kafkajs).
 *
 * **Records** are plain Kafka records, readable and writable by any Kafka client: key = the
 * message key (UTF-8), value = the encoded body, headers = UTF-8 string headers. mqkit's headers:
 * `mq-id` (message id), `content-type` (`application/json` by default, `application/octet-stream`
 * for bytes; a record without one is read as JSON), `mq-tag`; on copies mqkit makes,
 * `mq-attempt`, `mq-timestamp` (first produce time, ms), `mq-target-topic`, `mq-target-group`,
 * `mq-deliver-at` (ms since the epoch); on dead letters `mq-error-code`, `mq-error-name`,
 * `mq-error-message`, `mq-original-topic`, `mq-original-group`, `mq-original-partition`,
 * `mq-original-offset`, `mq-failed-at`. A record without `mq-id` gets the id
 * `<topic>-<partition>-<offset>`. A keyed record goes to partition `murmur2(key) % partitions`
 * (kafkajs's Java-compatible default partitioner: the same as `partitionForKey`), an unkeyed one
 * round-robin.
 *
 * **Producing**: acks 'all' | 'leader' | 'none' are Kafka's -1 | 1 | 0; with acks 'all' the
 * producer is idempotent unless `idempotent: false`. The kafkajs producers (one idempotent, one
 * not) are shared by the connection's producers. Sends made together, or while the previous
 * produce request is in flight, share one request (`producer.lingerMs`, `producer.batchSize`;
 * a `sendBatch` is never split); `producer.compression` compresses requests. Producers see the
 * partitions this connection's `ensureTopic` added at once, others' after `metadataMaxAgeMs`.
 *
 * **Consuming**: a subscription is one member of the consumer group `group` (broadcasting: of a
 * group of its own, `<group>.<pid>-<time>-<n>`, deleted when it closes); members of one group may
 * read different topics. `subscribe` resolves once the member joined and has its assignment.
 * Offsets are committed by the adapter, never by kafkajs: per partition the lowest offset whose
 * handler has not finished (so never past an unfinished message), at most every
 * `consumer.commitIntervalMs`, when the group starts rebalancing, and on close after in-flight
 * handlers finished. A failed commit is included in the next. What was handled but not
 * committed is delivered again after a rebalance or crash (at-least-once). Tags are filtered
 * here, not in the broker: skipped records are committed like handled ones. `startFrom`
 * 'latest' and `{ timestamp }` are looked up (end offsets, offsets by time) before joining and
 * committed for the group's partitions that have no committed offset; 'earliest' starts at the
 * first retained offset. See `KafkaTransport` for ordering, concurrency and rebalances.
 *
 * **Retry and dead letter**: order 'key' and 'partition' retry in place, holding the key or
 * partition (attempts are counted in memory: after a crash, or once the partition moved to
 * another member, they count from 1 again); order 'concurrent' (clustering) writes a copy with
 * `mq-attempt` through the delay tiers to `<topic>.<group>.retry`, which the group also reads,
 * so other messages keep flowing and the count survives restarts. Dead letters go to
 * `<topic>.<group>.dlq` (or the configured topic) with the error in the headers above. Retry
 * and dead-letter topics are created when first needed.
 *
 * **Delay**: a message with `delayMs` is written to the delay-tier topics `<prefix>.100ms`,
 * `.500ms`, `.2s`, `.10s`, `.1m`, `.10m` and `.1h` (prefix `delay.topicPrefix`, default
 * `mq.delay`) with `mq-target-topic` and `mq-deliver-at`, and `send` resolves once it is stored
 * there. Forwarders (group `<prefix>.forwarder`, run by every connection that sent a delayed
 * message or subscribed, unless `delay.forward` is false) move each record, when due, to the
 * longest tier not above the time left, and finally to its target. A message is never delivered
 * before its time; it is late by up to about the shortest tier plus a hop's latency per hop (and
 * any clock difference between machines), and at least one forwarding process must run. A
 * record its next topic refuses for good (too large for it, say) goes to
 * `<prefix>.undeliverable` with the error in dead-letter headers, so it does not hold up the
 * tier partition behind it.
 *
 * **Topics** created by the adapter (`ensureTopic`, retry, dead-letter and tier topics) get
 * replication factor min(3, brokers) and `max.message.bytes` 2 MiB, so the adapter's 1 MiB body
 * limit fits with headers; topics created otherwise follow the broker's `message.max.bytes`.
 * `ensureTopic` (and subscribing, which ensures its topics) resolves once every broker serves
 * the topic's metadata with a leader for each partition, within `requestTimeoutMs`; a broker
 * that cannot be reached is skipped (logged at debug), but at least one must answer. A consumer
 * whose first join meets a broker that has not caught up with a topic yet waits it out.
 * `close()` ends such waits in progress with `ClosedError` and waits for the calls in flight;
 * it waits for a connect in progress at most `connectionTimeoutMs + authenticationTimeoutMs`.
 * A delayed send's creation of the delay-tier topics counts against `producer.timeoutMs`.
 * A TLS certificate that does not verify is a non-retriable `ConnectionError`.
 *
 * Not atomic: `sendBatch` (records may be stored when it rejects), a handler's side effects and
 * the commit, forwarding a delayed record and committing its tier offset (it may arrive twice).
 */
import { type AdapterContext, defaultAdapterContext } from '../../core/adapter-context.js';
import type { Broker } from '../../core/broker.js';
import { KafkaBroker } from './broker.js';
import { checkCompression, createKafkajsClient } from './kafkajs/index.js';
import { type KafkaBrokerOptions, resolveKafkaOptions } from './options.js';

export { kafkaCapabilities } from './broker.js';
export type { KafkaBrokerOptions } from './options.js';

/**
 * Connects to the Kafka cluster `url` names: resolves once a bootstrap broker answered (and
 * accepted the SASL credentials). Rejects with `ConfigError` (bad URL or options) or
 * `ConnectionError`: retriable for a refused, unreachable or silent broker, not retriable for
 * refused credentials. The bootstrap brokers are tried 3 times, about 100 ms and 200 ms apart;
 * each attempt is bounded by `connectionTimeoutMs` (TCP, TLS) and `authenticationTimeoutMs`
 * per handshake request, so a refused port fails within a second and a broker that accepts
 * and never answers within about `3 × (connectionTimeoutMs + authenticationTimeoutMs)` (39 s
 * by default). Producers and consumers connect on first use; kafkajs's log lines go to
 * `context.logger` at `debug`.
 */
export async function createKafkaBroker(
  url: URL,
  options?: KafkaBrokerOptions,
  context: AdapterContext = defaultAdapterContext(),
): Promise<Broker> {
  const resolved = resolveKafkaOptions(url, options);
  checkCompression(resolved.producer.compression, 'kafka.producer.compression');
  const client = createKafkajsClient(resolved.client, context.logger);
  await client.connect();
  return new KafkaBroker(client, resolved, context.logger, context.events);
}
