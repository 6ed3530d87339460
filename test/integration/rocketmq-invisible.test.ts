import { describe, expect, inject, it } from 'vitest';
import { connect } from '../../src/index.js';
import { uniqueName, waitFor } from '../../src/testing/index.js';
import { recordingLogger } from './spies.js';

const INVISIBLE_MS = 10_000; // the proxy's minimum for a receive

describe('rocketmq: invisible time', () => {
  it('a message held 3x invisibleMs (running, or waiting in prefetch) is not delivered to another member', async () => {
    const url = inject('rocketmqUrl');
    const logger = recordingLogger();
    const a = await connect(url, { rocketmq: { invisibleMs: INVISIBLE_MS }, logger });
    const b = await connect(url, { rocketmq: { invisibleMs: INVISIBLE_MS }, logger });
    try {
      const topic = uniqueName('invis');
      const group = uniqueName('slow');
      await a.ensureTopic(topic, { partitions: 1 });
      const deliveries = new Map<number, number>();
      let handled = 0;
      const handler = async (m: { body: unknown }) => {
        const n = (m.body as { n: number }).n;
        deliveries.set(n, (deliveries.get(n) ?? 0) + 1);
        // The scenario: each handler outlasts the invisible time; with concurrency 1 the later
        // messages wait in prefetch for longer still.
        await new Promise((resolve) => setTimeout(resolve, INVISIBLE_MS * 1.5));
        handled++;
      };
      const options = { topic, group, concurrency: 1, startFrom: 'earliest' as const };
      const subA = await a.subscribe(options, handler);
      const subB = await b.subscribe(options, handler);
      const producer = a.producer();
      for (let n = 0; n < 3; n++) await producer.send({ topic, body: { n } });
      await waitFor(() => handled >= 3, { timeoutMs: 120_000 });
      expect([...deliveries.entries()].sort()).toEqual([
        [0, 1],
        [1, 1],
        [2, 1],
      ]);
      await subA.close();
      await subB.close();
      expect(logger.lines.filter((l) => /acknowledging|renewing/.test(l.message))).toEqual([]);
      expect((await a.backlog(topic, group)).total).toBe(0);
    } finally {
      await a.close();
      await b.close();
    }
  }, 180_000);
});
