import kafkajs from 'kafkajs';
import { type BenchOptions, type BenchResult, runWorkload } from '../src/cli/bench.js';
import { uuidv7 } from '../src/core/uuid.js';

/** Settings of the raw run besides the workload shape. */
export interface RawSettings {
  /** Consumer timings both sides of the comparison use (mqkit's defaults). */
  sessionTimeoutMs: number;
  heartbeatIntervalMs: number;
  maxWaitTimeMs: number;
  /**
   * Give each record the two headers mqkit writes for a bytes body (`mq-id`, a UUIDv7, and
   * `content-type`), to tell kafkajs's cost of headers from the rest of mqkit's.
   */
  mqkitHeaders: boolean;
}

/**
 * The raw kafkajs baseline for `benchBroker`: the same workload shape with nothing but kafkajs.
 * A topic of `partitions` partitions; an idempotent producer (acks all, one request in flight)
 * sends records of `size` bytes (keyed when `keys` > 0) (without headers, unless `mqkitHeaders`) in `sendBatch` calls of `batch`,
 * `inflight` at once, waiting while more than `maxLag` are sent but not handled; one consumer
 * in a new group reads from the beginning with `eachBatch`, resolving each offset and
 * committing after each batch (kafkajs's default). The send time travels in the body.
 */
export async function benchRawKafkajs(
  brokers: string[],
  options: BenchOptions,
  settings: RawSettings,
): Promise<BenchResult> {
  const kafka = new kafkajs.Kafka({ clientId: 'bench-raw', brokers, logLevel: kafkajs.logLevel.ERROR });
  const topic = `bench-raw-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: options.partitions }], waitForLeaders: true });
  await admin.disconnect();

  const consumer = kafka.consumer({
    groupId: 'bench',
    sessionTimeout: settings.sessionTimeoutMs,
    heartbeatInterval: settings.heartbeatIntervalMs,
    maxWaitTimeInMs: settings.maxWaitTimeMs,
  });
  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: kafkajs.Partitioners.DefaultPartitioner,
  });
  return runWorkload(options, {
    consume: async (received) => {
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: true });
      await consumer.run({
        partitionsConsumedConcurrently: options.partitions,
        eachBatch: async ({ batch, resolveOffset, heartbeat }) => {
          for (const message of batch.messages) {
            received(message.value as Buffer);
            resolveOffset(message.offset);
          }
          await heartbeat();
        },
      });
      await producer.connect();
    },
    send: async (batch) => {
      const messages = batch.map(({ body, key }) =>
        settings.mqkitHeaders
          ? { value: body, key, headers: { 'mq-id': uuidv7(), 'content-type': 'application/octet-stream' } }
          : { value: body, key },
      );
      await producer.sendBatch({ acks: -1, topicMessages: [{ topic, messages }] });
    },
    close: async () => {
      await consumer.disconnect();
      await producer.disconnect();
    },
  });
}
