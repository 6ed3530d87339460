import { afterEach, describe, expect, inject, it } from 'vitest';
import { type Broker, connect, isMqError, type Subscription } from '../../src/index.js';
import { Collector, uniqueName, waitFor } from '../../src/testing/index.js';
import { rawConnection, serverSideCloser } from './rabbitmq-helpers.js';

describe('rabbitmq: reconnect after the server dropped the connection', () => {
  let broker: Broker | undefined;
  const subscriptions: Subscription[] = [];

  afterEach(async () => {
    await Promise.all(subscriptions.splice(0).map((s) => s.close({ timeoutMs: 1000 })));
    await broker?.close();
  });

  async function open(name: string): Promise<Broker> {
    broker = await connect(inject('amqpUrl'), {
      rabbitmq: { connectionName: name, reconnect: { initialMs: 50, maxMs: 500 } },
    });
    return broker;
  }

  it.each(['both', 'consuming', 'publishing'] as const)(
    'after dropping %s connection(s): resumes publishing and consuming; every send it confirmed is delivered, the rest fail retriably',
    async (which) => {
      const name = uniqueName('mqkit-reconnect');
      const b = await open(name);
      const topic = uniqueName('reconnect');
      await b.ensureTopic(topic, { partitions: 2 });
      const concurrent = new Collector<{ i: number }>();
      const ordered = new Collector<{ i: number }>();
      subscriptions.push(
        await b.subscribe({ topic, group: 'c', order: 'concurrent', concurrency: 4 }, concurrent.handler()),
      );
      subscriptions.push(
        await b.subscribe({ topic, group: 'o', order: 'key', concurrency: 4 }, ordered.handler()),
      );
      const producer = b.producer({ timeoutMs: 20_000 });
      const confirmed = new Set<string>();
      for (let i = 0; i < 20; i++)
        confirmed.add((await producer.send({ topic, key: `k${i % 5}`, body: { i } })).id);
      await concurrent.waitForIds(20);
      await ordered.waitForIds(20);

      const dropConnection = await serverSideCloser(inject('amqpUrl'), name, which);
      const inFlight = Array.from({ length: 500 }, (_, i) =>
        producer.send({ topic, key: `k${i % 5}`, body: { i: 100 + i } }).then(
          (r) => ({ id: r.id }),
          (error: unknown) => ({ error }),
        ),
      );
      await dropConnection();
      const outcomes = await Promise.all(inFlight);
      for (const o of outcomes) {
        if ('id' in o) confirmed.add(o.id);
        else expect(isMqError(o.error) && o.error.retriable, String(o.error)).toBe(true);
      }
      // After the drop: sends go out on the new connection.
      for (let i = 0; i < 20; i++)
        confirmed.add((await producer.send({ topic, key: `k${i % 5}`, body: { i: 1000 + i } })).id);

      const missing = (c: Collector<unknown>) => [...confirmed].filter((id) => !c.ids.has(id)).length;
      await waitFor(
        () => missing(concurrent as Collector<unknown>) === 0 && missing(ordered as Collector<unknown>) === 0,
        {
          message: () =>
            `missing: concurrent ${missing(concurrent as Collector<unknown>)}, ordered ${missing(ordered as Collector<unknown>)} of ${confirmed.size}`,
        },
      );
    },
  );

  it('declares its topology again after reconnecting', async () => {
    const name = uniqueName('mqkit-redeclare');
    const b = await open(name);
    const topic = uniqueName('redeclare');
    await b.ensureTopic(topic);
    const got = new Collector<{ n: number }>();
    subscriptions.push(await b.subscribe({ topic, group: 'g', order: 'concurrent' }, got.handler()));
    const producer = b.producer();
    await producer.send({ topic, body: { n: 1 } });
    await got.waitForCount(1);

    // An operator deletes the topic exchange (and with it the group's binding)...
    const raw = await rawConnection(inject('amqpUrl'));
    const channel = await raw.createChannel();
    await channel.deleteExchange(topic);
    await raw.close();
    // ...and the connection drops: the adapter must put both back.
    await (await serverSideCloser(inject('amqpUrl'), name))();
    // Sends while the group's binding is missing are held for new groups (this one exists
    // already); once the subscription re-bound its queue, a send reaches it.
    let n = 2;
    await waitFor(
      async () => {
        try {
          await producer.send({ topic, body: { n: ++n } });
        } catch (error) {
          // While the exchange is gone a send may be refused.
          if (!isMqError(error, 'PUBLISH')) throw error;
        }
        return got.bodies.some((b) => b.n > 2);
      },
      { intervalMs: 50, message: 'message after redeclare not consumed' },
    );
  });
});
