import { describe, expect, inject, it } from 'vitest';
import { connect } from '../../src/index.js';
import { Collector, uniqueName } from '../../src/testing/index.js';

// The proxy refuses control characters in property values, blank keys or keys with control
// characters, and message groups over 64 characters: the adapter encodes them reversibly.
describe('rocketmq: property values and keys the proxy refuses as they are', () => {
  it('dead-letters an error whose message has a newline, the message text intact', async () => {
    const broker = await connect(inject('rocketmqUrl'));
    try {
      const topic = uniqueName('nl');
      const group = uniqueName('g');
      await broker.ensureTopic(topic, { partitions: 1 });
      const dlq = `${topic}.${group}.dlq`;
      await broker.ensureTopic(dlq, { partitions: 1 });
      const dead = new Collector();
      await broker.subscribe(
        { topic: dlq, group: uniqueName('dlq-reader'), startFrom: 'earliest' },
        dead.handler(),
      );
      const text = 'line one\nline two\t100% \u0001done';
      await broker.subscribe(
        { topic, group, order: 'concurrent', retry: { attempts: 1 }, startFrom: 'earliest' },
        async () => {
          throw new Error(text);
        },
      );
      await broker.producer().send({ topic, key: 'k', body: { n: 1 } });
      const [d] = await dead.waitForCount(1, 60_000);
      expect(d?.deadLetter?.errorMessage).toBe(text);
      expect(d?.key).toBe('k');
    } finally {
      await broker.close();
    }
  }, 90_000);

  it('round-trips a 100-character key, a key with a newline, and headers with control characters and %', async () => {
    const broker = await connect(inject('rocketmqUrl'));
    try {
      const topic = uniqueName('props');
      await broker.ensureTopic(topic, { partitions: 2 });
      const got = new Collector<{ n: number }>();
      await broker.subscribe(
        { topic, group: uniqueName('g'), order: 'key', startFrom: 'earliest' },
        got.handler(),
      );
      const long = 'k'.repeat(100);
      const headers = {
        'x-multi': 'a\nb\r\n%0A',
        'x-pct': '100%25',
        'x-plain': 'plain',
        'x-ctl\nname': 'v\u0000',
      };
      const producer = broker.producer();
      await producer.send({ topic, key: long, body: { n: 1 }, headers });
      await producer.send({ topic, key: 'two\nlines', body: { n: 2 } });
      await producer.send({ topic, key: '   ', body: { n: 3 } });
      const all = await got.waitForCount(3, 60_000);
      const byN = new Map(all.map((d) => [d.body.n, d]));
      expect(byN.get(1)?.key).toBe(long);
      expect(byN.get(1)?.headers).toMatchObject(headers);
      expect(Object.keys(byN.get(1)?.headers ?? {}).filter((h) => h.startsWith('mq-enc'))).toEqual([]);
      expect(byN.get(2)?.key).toBe('two\nlines');
      expect(byN.get(3)?.key).toBe('   ');
    } finally {
      await broker.close();
    }
  }, 90_000);
});
