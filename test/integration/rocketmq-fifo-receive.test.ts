import { SimpleConsumer } from 'rocketmq-client-nodejs';
import { describe, expect, inject, it } from 'vitest';
import { connect } from '../../src/index.js';
import { Collector, uniqueName } from '../../src/testing/index.js';

// A FIFO group's queue is locked at the broker while a member holds its messages, and a receive
// parked on locked queues is answered only on the broker's next periodic check. So an ordered
// subscription on a one-queue topic asks for more only once what it holds is acknowledged.
// Counted here at the client (every SimpleConsumer's receive and ack in this process).
describe('rocketmq: receiving for an ordered group', () => {
  it('asks for more only once the messages of every queue it holds are acknowledged', async () => {
    const proto = SimpleConsumer.prototype as unknown as {
      receive: (...args: unknown[]) => Promise<unknown[]>;
      ack: (...args: unknown[]) => Promise<unknown>;
    };
    const receive = proto.receive;
    const ack = proto.ack;
    let received = 0;
    let acked = 0;
    const heldAtReceive: number[] = [];
    proto.receive = async function (this: unknown, ...args: unknown[]) {
      heldAtReceive.push(received - acked);
      const views = await receive.apply(this, args);
      received += views.length;
      return views;
    };
    // Counted when the ack ends, also when it fails (the transport stops waiting on it then too).
    proto.ack = async function (this: unknown, ...args: unknown[]) {
      try {
        return await ack.apply(this, args);
      } finally {
        acked++;
      }
    };
    const broker = await connect(inject('rocketmqUrl'));
    try {
      const topic = uniqueName('fifo-receive');
      await broker.ensureTopic(topic, { partitions: 1 });
      const producer = broker.producer();
      const total = 200;
      await producer.sendBatch(
        Array.from({ length: total }, (_, n) => ({ topic, key: `k${n % 50}`, body: { n } })),
      );
      const got = new Collector<{ n: number }>();
      await broker.subscribe(
        { topic, group: uniqueName('g'), order: 'key', concurrency: 50, startFrom: 'earliest' },
        got.handler(),
      );
      await got.waitForCount(total, 60_000);
      expect(received).toBeGreaterThanOrEqual(total);
      // More than one receive brought messages, and none went out while messages were held.
      expect(heldAtReceive.length).toBeGreaterThan(total / 32);
      expect(heldAtReceive.filter((held) => held > 0)).toEqual([]);
    } finally {
      await broker.close();
      proto.receive = receive;
      proto.ack = ack;
    }
  }, 90_000);
});
