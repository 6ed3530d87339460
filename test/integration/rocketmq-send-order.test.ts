import { describe, expect, inject, it } from 'vitest';
import { connect } from '../../src/index.js';
import { Collector, uniqueName } from '../../src/testing/index.js';

// The gRPC client sends each message as an RPC of its own; the producer keeps a key's messages
// in call order across calls in flight at once, as Kafka's and RabbitMQ's producers do.
describe('rocketmq: one producer, one key, calls in flight at once', () => {
  it('stores the messages of a key in call order across concurrent sendBatch and send calls', async () => {
    const broker = await connect(inject('rocketmqUrl'));
    try {
      const topic = uniqueName('send-order');
      await broker.ensureTopic(topic, { partitions: 1 });
      const got = new Collector<{ n: number }>();
      await broker.subscribe(
        { topic, group: uniqueName('g'), order: 'key', startFrom: 'earliest' },
        got.handler(),
      );
      const producer = broker.producer();
      const batches = 4;
      const size = 15;
      const calls: Promise<unknown>[] = [];
      let n = 0;
      for (let b = 0; b < batches; b++) {
        const batch = Array.from({ length: size }, () => ({ topic, key: 'one', body: { n: n++ } }));
        calls.push(producer.sendBatch(batch));
        calls.push(producer.send({ topic, key: 'one', body: { n: n++ } }));
      }
      await Promise.all(calls);
      const all = await got.waitForCount(n, 60_000);
      expect(all.map((d) => d.body.n)).toEqual(Array.from({ length: n }, (_, i) => i));
    } finally {
      await broker.close();
    }
  }, 90_000);
});
