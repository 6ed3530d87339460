import { afterEach, describe, expect, it } from 'vitest';
import { type Broker, connect, isMqError } from '../../src/index.js';
import { Collector, uniqueName } from '../../src/testing/index.js';

/** `idempotent` is Kafka's: the memory broker refuses `true` instead of ignoring it. */
describe('memory broker: producer({ idempotent })', () => {
  let broker: Broker | undefined;

  afterEach(async () => {
    await broker?.close();
    broker = undefined;
  });

  it('refuses idempotent: true with an UnsupportedError naming the option', async () => {
    broker = await connect(`memory://${uniqueName('idempotent')}`);
    let error: unknown;
    try {
      broker.producer({ idempotent: true });
    } catch (e) {
      error = e;
    }
    expect(isMqError(error, 'UNSUPPORTED'), String(error)).toBe(true);
    expect((error as Error).message).toContain('producer.idempotent');
  });

  it('accepts idempotent: false and the default, and sends with them', async () => {
    broker = await connect(`memory://${uniqueName('idempotent')}`);
    const topic = uniqueName('t');
    const got = new Collector();
    const subscription = await broker.subscribe({ topic, group: 'g' }, got.handler());
    await broker.producer({ idempotent: false }).send({ topic, body: 1 });
    await broker.producer().send({ topic, body: 2 });
    await got.waitForCount(2);
    expect(got.bodies.sort()).toEqual([1, 2]);
    await subscription.close();
  });
});
