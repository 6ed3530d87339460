import { isMqError } from '../core/errors.js';

/**
 * Attribute names of the OpenTelemetry messaging semantic conventions as mqkit sets them.
 *
 * The messaging conventions are still in development, and semconv 1.3x renamed some attributes
 * (`messaging.system` to `messaging.system.name`, `messaging.kafka.*` to `kafka.*`,
 * `messaging.rabbitmq.*` to `rabbitmq.*`). Backends and dashboards key on either, so mqkit sets
 * both names of a renamed attribute until the conventions are stable.
 */
export const ATTR = {
  system: 'messaging.system',
  systemName: 'messaging.system.name',
  destination: 'messaging.destination.name',
  partition: 'messaging.destination.partition.id',
  group: 'messaging.consumer.group.name',
  messageId: 'messaging.message.id',
  operationType: 'messaging.operation.type',
  operationName: 'messaging.operation.name',
  batchCount: 'messaging.batch.message_count',
  bodySize: 'messaging.message.body.size',
  kafkaKey: 'kafka.message.key',
  kafkaKeyPrevious: 'messaging.kafka.message.key',
  kafkaOffset: 'kafka.offset',
  kafkaOffsetPrevious: 'messaging.kafka.offset',
  rabbitRoutingKey: 'rabbitmq.destination.routing_key',
  rabbitRoutingKeyPrevious: 'messaging.rabbitmq.destination.routing_key',
  errorType: 'error.type',
  /** mqkit's own: the delivery attempt a process span is about (1, 2, ...). */
  attempt: 'mqkit.delivery.attempt',
  /** mqkit's own, on retry settle spans: the back-off before the next attempt, and how it is made. */
  retryDelayMs: 'mqkit.retry.delay_ms',
  retryVia: 'mqkit.retry.via',
  /** mqkit's own, on dead-letter settle spans: the topic the message went to. */
  deadLetterTopic: 'mqkit.dead_letter.topic',
} as const;

/** Names of the metric instruments, from the messaging metrics conventions. */
export const METRIC = {
  operationDuration: 'messaging.client.operation.duration',
  sentMessages: 'messaging.client.sent.messages',
  consumedMessages: 'messaging.client.consumed.messages',
  processDuration: 'messaging.process.duration',
  /** Not in the conventions yet (no standard lag metric exists): mqkit's name for a group's backlog. */
  consumerLag: 'messaging.consumer.lag',
} as const;

/** The conventions' advised bucket boundaries (seconds) for messaging duration histograms. */
export const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

export type Attributes = Record<string, string | number | boolean>;

/** `messaging.system` and `messaging.system.name`: the adapter's kind ('kafka', 'rabbitmq', 'memory', ...). */
export function systemAttributes(kind: string): Attributes {
  return { [ATTR.system]: kind, [ATTR.systemName]: kind };
}

/**
 * Attributes of one message on a given broker: its key and offset on Kafka, its routing key on
 * RabbitMQ (mqkit routes by tag; an untagged message has the empty routing key).
 */
export function brokerMessageAttributes(
  kind: string,
  message: { key?: string | undefined; tag?: string | undefined; offset?: string | undefined },
  into: Attributes,
): void {
  if (kind === 'kafka') {
    if (message.key !== undefined) {
      into[ATTR.kafkaKey] = message.key;
      into[ATTR.kafkaKeyPrevious] = message.key;
    }
    if (message.offset !== undefined) {
      const offset = Number(message.offset);
      into[ATTR.kafkaOffset] = offset;
      into[ATTR.kafkaOffsetPrevious] = offset;
    }
  } else if (kind === 'rabbitmq') {
    into[ATTR.rabbitRoutingKey] = message.tag ?? '';
    into[ATTR.rabbitRoutingKeyPrevious] = message.tag ?? '';
  }
}

/**
 * `error.type`, low-cardinality as the conventions ask: an mqkit error's code (e.g. 'TIMEOUT'),
 * else the error's class name, else '_OTHER'.
 */
export function errorType(error: unknown): string {
  if (isMqError(error)) return error.code;
  if (error instanceof Error)
    return error.name && error.name !== 'Error' ? error.name : error.constructor.name;
  return '_OTHER';
}
