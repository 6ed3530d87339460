import { type BenchOptions, type BenchResult, type ProgressListener, runWorkload } from '../bench.js';

/** `kafka://user:pass@h1:9092,h2` → `['h1:9092', 'h2:9092']` (default port 9092). */
export function kafkaHosts(url: string): string[] {
  const authority = (url.replace(/^[a-z]+:\/\//i, '').split(/[/?#]/)[0] ?? '').split('@').pop() ?? '';
  return authority.split(',').map((h) => (h.includes(':') ? h : `${h}:9092`));
}

/**
 * The raw kafkajs baseline: the same workload with nothing but kafkajs (loaded on first use,
 * as the Kafka adapter loads it). A topic of `partitions` partitions; one producer per workload
 * producer (idempotent at acks all, one request in flight; `acks` as the workload says) sends
 * records keyed when `keys` > 0, without headers; `consumers` consumers in a new group read
 * from the beginning with `eachBatch`, resolving each offset (kafkajs's default commits), with
 * mqkit's consumer timings so the comparison is of the SDK only. The handler does no work
 * (`handlerMs`, `order` and `concurrency` are mqkit's and are not simulated).
 */
export async function benchRawKafkajs(
  url: string,
  options: BenchOptions,
  onProgress?: ProgressListener,
): Promise<BenchResult> {
  const { default: kafkajs } = await import('kafkajs');
  const kafka = new kafkajs.Kafka({
    clientId: 'bench-raw',
    brokers: kafkaHosts(url),
    logLevel: kafkajs.logLevel.NOTHING,
  });
  const topic = `bench-raw-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({
      topics: [{ topic, numPartitions: options.partitions }],
      waitForLeaders: true,
    });
  } finally {
    await admin.disconnect();
  }
  const acks = options.acks === 'all' ? -1 : options.acks === 'leader' ? 1 : 0;
  const consumers = Array.from({ length: options.consumers }, () =>
    kafka.consumer({
      groupId: `bench-${topic}`,
      sessionTimeout: 30_000,
      heartbeatInterval: 500,
      maxWaitTimeInMs: 200,
    }),
  );
  // One connecting promise per workload producer: its lanes share it (a second lane must not
  // send on a producer still connecting).
  const producers: Promise<ReturnType<typeof kafka.producer>>[] = [];
  const producerOf = (p: number) => {
    let producer = producers[p];
    if (producer === undefined) {
      const created = kafka.producer({
        idempotent: acks === -1,
        maxInFlightRequests: acks === -1 ? 1 : undefined,
        createPartitioner: kafkajs.Partitioners.DefaultPartitioner,
      });
      producer = created.connect().then(() => created);
      producers[p] = producer;
    }
    return producer;
  };
  return runWorkload(
    options,
    {
      consume: async (received) => {
        for (const consumer of consumers) {
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
        }
      },
      send: async (batch, p) => {
        const producer = await producerOf(p);
        await producer.sendBatch({
          acks,
          topicMessages: [{ topic, messages: batch.map(({ body, key }) => ({ value: body, key })) }],
        });
      },
      close: async () => {
        for (const c of consumers) await c.disconnect();
        for (const p of producers) await (await p)?.disconnect();
        const cleanup = kafka.admin();
        await cleanup.connect();
        await cleanup.deleteTopics({ topics: [topic] }).catch(() => {});
        await cleanup.disconnect();
      },
    },
    { library: 'raw kafkajs', broker: 'kafka', ...(onProgress ? { onProgress } : {}) },
  );
}
