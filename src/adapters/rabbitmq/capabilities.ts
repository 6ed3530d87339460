import type { Capabilities } from '../../core/broker.js';

// Apart from broker.ts on purpose: index.ts re-exports the capabilities and mqkit's root
// declarations reach index.ts, so nothing imported here may lead to amqplib's types (an
// optional peer that users without RabbitMQ do not install).

export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

export const rabbitMqCapabilities: Capabilities = Object.freeze({
  // Default topics are queues, which drop what they delivered; stream topics (option `streams`) replay.
  replay: false,
  brokerSideTagFilter: true,
  keyIsolation: true,
  partitions: true,
  nativeDelay: false,
  durable: true,
  acks: Object.freeze(['all', 'leader', 'none'] as const),
  maxMessageBytes: MAX_MESSAGE_BYTES,
});
