import { type BenchOptions, type BenchResult, type ProgressListener, runWorkload } from '../bench.js';

/**
 * The raw rocketmq-client-nodejs baseline: the same workload with nothing but Apache's client
 * (loaded on first use, as the adapter loads it). The topic (`partitions` queues, message type
 * MIXED) and the consumer group (FIFO for order 'key' and 'partition', as mqkit makes it) are
 * created with mqkit's remoting admin, outside the measurement. One client Producer per workload
 * producer sends each message of a batch at once (keyed messages with their key as FIFO message
 * group, as mqkit does), and each of `consumers` SimpleConsumers long-polls 32 messages at a time
 * and acknowledges each, with mqkit's poll settings, so the comparison is of the SDK only.
 */
export async function benchRawRocketmq(
  url: string,
  options: BenchOptions,
  onProgress?: ProgressListener,
): Promise<BenchResult> {
  const { Producer, SimpleConsumer } = await import('rocketmq-client-nodejs');
  const { RocketMqAdmin } = await import('../../adapters/rocketmq/admin.js');
  const parsed = new URL(url);
  const endpoints = `${parsed.hostname}:${parsed.port || '8081'}`;
  const admin = new RocketMqAdmin(parsed.searchParams.get('namesrv') ?? undefined, 10_000);
  const topic = `bench-raw-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
  const group = `bench-${topic}`;
  const quiet = { info() {}, warn() {}, error() {}, debug() {} };
  const client = { endpoints, namespace: '', requestTimeout: 10_000, logger: quiet };
  await admin.ensureTopic(topic, options.partitions);
  await admin.ensureGroup(group, options.order !== 'concurrent');
  const producers: Promise<InstanceType<typeof Producer>>[] = [];
  const producerOf = (p: number) => {
    let producer = producers[p];
    if (producer === undefined) {
      const created = new Producer({ ...client, topics: [topic] });
      producer = created.startup().then(() => created);
      producers[p] = producer;
    }
    return producer;
  };
  const consumers: InstanceType<typeof SimpleConsumer>[] = [];
  let stopping = false;
  const loops: Promise<void>[] = [];
  return runWorkload(
    options,
    {
      consume: async (received) => {
        for (let c = 0; c < options.consumers; c++) {
          const consumer = new SimpleConsumer({
            ...client,
            consumerGroup: group,
            subscriptions: new Map([[topic, '*']]),
            awaitDuration: 2000,
          });
          await consumer.startup();
          consumers.push(consumer);
          loops.push(
            (async () => {
              let failures = 0;
              while (!stopping) {
                let views: Awaited<ReturnType<typeof consumer.receive>>;
                try {
                  views = await consumer.receive(32, 30_000);
                  failures = 0;
                } catch (error) {
                  // An empty long poll ends in a "no new message" status; anything else (the
                  // proxy gone) backs off rather than spinning.
                  if ((error as { code?: number }).code === 40_401 || /no new message/i.test(String(error)))
                    continue;
                  failures++;
                  await new Promise((r) => setTimeout(r, Math.min(2000, 50 * 2 ** Math.min(failures, 6))));
                  continue;
                }
                await Promise.all(
                  views.map(async (view) => {
                    received(view.body);
                    await consumer.ack(view).catch(() => {});
                  }),
                );
              }
            })(),
          );
        }
      },
      send: async (batch, p) => {
        const producer = await producerOf(p);
        await Promise.all(
          batch.map(({ body, key }) =>
            producer.send({ topic, body, ...(key === undefined ? {} : { keys: [key], messageGroup: key }) }),
          ),
        );
      },
      close: async () => {
        stopping = true;
        await Promise.all(loops);
        for (const c of consumers) await c.shutdown().catch(() => {});
        for (const p of producers) await (await p.catch(() => undefined))?.shutdown().catch(() => {});
        await admin.deleteGroup(group).catch(() => {});
        await admin.deleteTopic(topic).catch(() => {});
        admin.close();
      },
    },
    { library: 'raw rocketmq-client-nodejs', broker: 'rocketmq', ...(onProgress ? { onProgress } : {}) },
  );
}
