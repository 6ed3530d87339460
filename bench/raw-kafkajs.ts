import { performance } from 'node:perf_hooks';
import kafkajs from 'kafkajs';
import { type BenchOptions, type BenchResult, summarize } from '../src/cli/bench.js';
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
 * sends unkeyed records of `size` bytes (without headers, unless `mqkitHeaders`) in `sendBatch` calls of `batch`,
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

  const latencies = new Float64Array(options.messages);
  let received = 0;
  let next = 0;
  let wakeProducers: (() => void) | undefined;
  let finish: () => void = () => {};
  const allReceived = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const consumer = kafka.consumer({
    groupId: 'bench',
    sessionTimeout: settings.sessionTimeoutMs,
    heartbeatInterval: settings.heartbeatIntervalMs,
    maxWaitTimeInMs: settings.maxWaitTimeMs,
  });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    partitionsConsumedConcurrently: options.partitions,
    eachBatch: async ({ batch, resolveOffset, heartbeat }) => {
      for (const message of batch.messages) {
        if (received < options.messages) {
          latencies[received] = performance.now() - (message.value as Buffer).readDoubleLE(0);
        }
        resolveOffset(message.offset);
        if (++received === options.messages) finish();
        if (wakeProducers !== undefined && next - received <= options.maxLag / 2) {
          wakeProducers();
          wakeProducers = undefined;
        }
      }
      await heartbeat();
    },
  });

  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: kafkajs.Partitioners.DefaultPartitioner,
  });
  await producer.connect();
  const template = Buffer.alloc(Math.max(8, options.size), 0x61);
  const started = performance.now();
  const lane = async () => {
    while (next < options.messages) {
      while (options.maxLag > 0 && next - received > options.maxLag) {
        await new Promise<void>((resolve) => {
          const previous = wakeProducers;
          wakeProducers = () => {
            previous?.();
            resolve();
          };
        });
      }
      const count = Math.min(options.batch, options.messages - next);
      next += count;
      const messages = new Array(count);
      for (let i = 0; i < count; i++) {
        const value = Buffer.from(template);
        value.writeDoubleLE(performance.now(), 0);
        messages[i] = settings.mqkitHeaders
          ? { value, headers: { 'mq-id': uuidv7(), 'content-type': 'application/octet-stream' } }
          : { value };
      }
      await producer.sendBatch({ acks: -1, topicMessages: [{ topic, messages }] });
    }
  };
  await Promise.all(Array.from({ length: options.inflight }, lane));
  const produced = performance.now();
  await allReceived;
  const ended = performance.now();
  await consumer.disconnect();
  await producer.disconnect();
  return summarize(options, latencies, started, produced, ended);
}
