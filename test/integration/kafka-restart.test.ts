import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Broker, connect, isMqError } from '../../src/index.js';
import { Collector, uniqueName, waitFor } from '../../src/testing/index.js';
import { type KafkaServer, startKafka } from '../infra/kafka.js';

// This test kills a broker, so it runs on a single-node cluster of its own, never the shared one.
describe('kafka: broker crash and restart (own cluster)', () => {
  let server: KafkaServer;
  let broker: Broker | undefined;

  beforeAll(async () => {
    server = await startKafka();
  }, 180_000);

  afterAll(async () => {
    await broker?.close();
    await server?.stop();
  }, 60_000);

  it('after a SIGKILL and restart, every send it acknowledged is delivered, the rest fail retriably, consumers resume', async () => {
    const b = await connect(`kafka://${server.bootstrap}?logLevel=nothing`);
    broker = b;
    const topic = uniqueName('crash');
    await b.ensureTopic(topic, { partitions: 2 });
    const got = new Collector<{ i: number }>();
    const ordered = new Collector<{ i: number }>();
    await b.subscribe({ topic, group: uniqueName('c'), concurrency: 4 }, got.handler());
    await b.subscribe({ topic, group: uniqueName('o'), order: 'key', concurrency: 4 }, ordered.handler());
    const producer = b.producer({ timeoutMs: 60_000 });
    const acknowledged = new Set<string>();
    const failed: unknown[] = [];
    let next = 0;
    let sending = true;
    // Three publishers keep sending across the crash, each awaiting its own acknowledgements.
    const publishers = Array.from({ length: 3 }, async () => {
      while (sending) {
        const i = next++;
        try {
          acknowledged.add((await producer.send({ topic, key: `k${i % 7}`, body: { i } })).id);
        } catch (error) {
          failed.push(error);
        }
      }
    });
    await waitFor(() => acknowledged.size >= 300, { timeoutMs: 60_000 });
    await server.killNode();
    const atCrash = acknowledged.size;
    await server.restartNode();
    await waitFor(() => acknowledged.size >= atCrash + 300, {
      timeoutMs: 120_000,
      message: () => `${acknowledged.size - atCrash} sends acknowledged since the restart`,
    });
    sending = false;
    await Promise.all(publishers);

    for (const error of failed) expect(isMqError(error) && error.retriable, String(error)).toBe(true);
    const missing = (c: Collector<{ i: number }>) => [...acknowledged].filter((id) => !c.ids.has(id)).length;
    await waitFor(() => missing(got) === 0 && missing(ordered) === 0, {
      timeoutMs: 120_000,
      message: () =>
        `acknowledged but not delivered: ${missing(got)} (concurrent), ${missing(ordered)} (key order) of ${acknowledged.size}`,
    });
  }, 420_000);
});
