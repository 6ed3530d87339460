import { describe, expect, inject, it } from 'vitest';
import { RocketMqAdmin } from '../../src/adapters/rocketmq/admin.js';
import { nativeName } from '../../src/adapters/rocketmq/names.js';
import { connect } from '../../src/index.js';
import { Collector, uniqueName, waitFor } from '../../src/testing/index.js';

describe('rocketmq: broadcasting', () => {
  it("an instance's group and its offsets are deleted when it closes", async () => {
    const url = new URL(inject('rocketmqUrl'));
    const broker = await connect(url.href);
    const admin = new RocketMqAdmin(url.searchParams.get('namesrv') ?? undefined, 10_000);
    try {
      const topic = uniqueName('bcast');
      await broker.ensureTopic(topic);
      const got = new Collector();
      const sub = await broker.subscribe(
        { topic, group: uniqueName('cache'), mode: 'broadcasting' },
        got.handler(),
      );
      await broker.producer().send({ topic, body: { n: 1 } });
      await got.waitForCount(1, 30_000);
      const [queue] = await admin.queues(topic);
      const group = nativeName(sub.group, 'group');
      // The pop committed the instance's offset past the message.
      await waitFor(async () => (await admin.consumerOffset(queue!, topic, group)) === 1n, {
        timeoutMs: 30_000,
      });
      await sub.close();
      expect(await admin.consumerOffset(queue!, topic, group)).toBeUndefined();
    } finally {
      admin.close();
      await broker.close();
    }
  });
});
