import { createHash } from 'node:crypto';

/** AMQP names are short strings: at most 255 bytes. */
const MAX_NAME_BYTES = 255;

/**
 * A name as is when it fits in 255 bytes, else its first 200 characters plus a hash of the
 * whole, so long topic and group names still map to distinct, stable names.
 */
function amqpName(name: string): string {
  if (Buffer.byteLength(name) <= MAX_NAME_BYTES) return name;
  return `${name.slice(0, 200)}~${createHash('sha1').update(name).digest('hex').slice(0, 16)}`;
}

/**
 * Names of everything the adapter declares. Topic and group names are made of
 * `A-Z a-z 0-9 . _ -`, so the `:` separator cannot make two (topic, group) pairs collide.
 * Exchanges and queues live in separate namespaces, which is why a topic's exchange and its
 * retained queue share the topic's name.
 */
export const names = {
  /** Durable topic exchange producers publish to. */
  topicExchange: (topic: string): string => amqpName(topic),
  /** Queue that retains every message of a topic: dead-letter topics (classic) and stream topics. */
  topicQueue: (topic: string): string => amqpName(topic),
  /** A concurrent group's shared queue, or a broadcasting subscription's own queue. */
  groupQueue: (topic: string, group: string): string => amqpName(`${topic}:${group}`),
  /** A key-ordered group's consistent-hash exchange. */
  hashExchange: (topic: string, group: string): string => amqpName(`${topic}:${group}:hash`),
  /** A key-ordered group's partition queue `p`. */
  partitionQueue: (topic: string, group: string, partition: number): string =>
    amqpName(`${topic}:${group}:p${partition}`),
  /** Fanout exchange the members of a key-ordered group announce themselves on. */
  membersExchange: (topic: string, group: string): string => amqpName(`${topic}:${group}:members`),
  /** Durable queue whose message count is the topic's partition count. */
  partitionsMeta: (topic: string): string => amqpName(`mq.meta:${topic}:partitions`),
  /** Exclusive queue held while the partition count is raised, so concurrent raises do not add up. */
  partitionsLock: (topic: string): string => amqpName(`mq.meta:${topic}:lock`),
  /**
   * Alternate exchange of a topic exchange, and the durable queue behind it that holds messages
   * no group's binding took, until a group subscribes (see `Topology.topic`).
   */
  unrouted: (topic: string): string => amqpName(`mq.unrouted:${topic}`),
  /**
   * Auto-deleted queue each live member of a clustering group consumes from; its arguments
   * carry the group's shape, so RabbitMQ itself refuses a member that subscribes otherwise.
   */
  groupShape: (topic: string, group: string): string => amqpName(`mq.shape:${topic}:${group}`),
  /** Fanout exchange and queue of one delay tier (`ms` milliseconds of TTL). */
  delayTier: (ms: number): string => `mq.delay:${ms}`,
  /** Headers exchange a delay tier dead-letters into; it routes to the next hop. */
  delayNext: (ms: number): string => `mq.delay:${ms}:next`,
} as const;
