import { Producer as ClientProducer } from 'rocketmq-client-nodejs';
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

  it('bounds each call by its own timeout while it waits behind a slow send of its key, and then does not send it', async () => {
    const proto = ClientProducer.prototype as unknown as { send: (...args: unknown[]) => Promise<unknown> };
    const send = proto.send;
    let openGate = (): void => {};
    const gate = new Promise<void>((resolve) => {
      openGate = resolve;
    });
    let calls = 0;
    // The first RPC is held until the test opens the gate; later ones go through.
    proto.send = async function (this: unknown, ...args: unknown[]) {
      if (calls++ === 0) await gate;
      return send.apply(this, args);
    };
    const broker = await connect(inject('rocketmqUrl'));
    try {
      const topic = uniqueName('send-timeout');
      await broker.ensureTopic(topic, { partitions: 1 });
      const producer = broker.producer({ timeoutMs: 300 });
      const sends = Array.from({ length: 4 }, (_, n) => producer.send({ topic, key: 'k', body: { n } }));
      const settled = await Promise.allSettled(sends);
      expect(settled.map((s) => s.status)).toEqual(['rejected', 'rejected', 'rejected', 'rejected']);
      for (const s of settled) expect((s as PromiseRejectedResult).reason).toMatchObject({ code: 'TIMEOUT' });
      // Only the held RPC went out: the others' turn came after their callers had given up.
      expect(calls).toBe(1);
      openGate();
      await producer.close();
      expect(calls).toBe(1);
    } finally {
      openGate();
      proto.send = send;
      await broker.close();
    }
  }, 60_000);
});
