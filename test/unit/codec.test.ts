import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { connect, type Delivery, defineTopic, isMqError } from '../../src/index.js';
import { Collector, uniqueName } from '../../src/testing/index.js';

const Order = z.object({ orderId: z.string(), amount: z.number().positive() });

describe('typed topics with a Standard Schema validator (zod)', () => {
  it('types and validates bodies on both sides', async () => {
    const broker = await connect('memory://codec');
    const orders = defineTopic(uniqueName('orders'), { schema: Order });
    const got = new Collector<z.infer<typeof Order>>();
    await broker.subscribe({ topic: orders, group: 'billing' }, got.handler());
    const producer = broker.producer();
    await producer.send({ topic: orders, body: { orderId: 'o-1', amount: 12.5 } });
    const error = await producer
      .send({ topic: orders, body: { orderId: 'o-2', amount: -1 } })
      .catch((e: unknown) => e);
    expect(isMqError(error, 'DECODE')).toBe(true);
    expect((error as { issues: { path: unknown[] }[] }).issues[0]?.path).toEqual(['amount']);
    const [d] = await got.waitForCount(1);
    const typed: Delivery<{ orderId: string; amount: number }> = d!;
    expect(typed.body.amount).toBe(12.5);
    await broker.close();
  });

  it('waits for an asynchronous validator on the consumer side', async () => {
    const broker = await connect('memory://codec');
    const name = uniqueName('async');
    const AsyncOrder = Order.refine(async (o) => o.orderId.startsWith('o-'), { message: 'bad id' });
    const got = new Collector();
    const dead = new Collector();
    await broker.subscribe({ topic: `${name}.g.dlq`, group: 'r' }, dead.handler());
    await broker.subscribe({ topic: defineTopic(name, { schema: AsyncOrder }), group: 'g' }, got.handler());
    const producer = broker.producer();
    await producer.send({ topic: name, body: { orderId: 'x-1', amount: 1 } });
    await producer.send({ topic: name, body: { orderId: 'o-2', amount: 2 } });
    await got.waitForCount(1);
    const [bad] = await dead.waitForCount(1);
    expect(got.bodies).toEqual([{ orderId: 'o-2', amount: 2 }]);
    expect(bad?.deadLetter?.errorCode).toBe('DECODE');
    expect(bad?.deadLetter?.errorMessage).toContain('bad id');
    await broker.close();
  });

  it('dead-letters what a handler or a decoder throws, even an object String() cannot show', async () => {
    const broker = await connect('memory://codec');
    const name = uniqueName('thrown');
    const dead = new Collector();
    await broker.subscribe({ topic: `${name}.g.dlq`, group: 'r' }, dead.handler());
    await broker.subscribe({ topic: name, group: 'g', retry: { attempts: 1 } }, () => {
      throw Object.create(null);
    });
    const odd = `${name}-codec`;
    const codec = {
      contentType: 'application/x-odd',
      encode: (v: unknown) => new TextEncoder().encode(String(v)),
      decode: () => {
        throw Object.create(null);
      },
    };
    await broker.subscribe({ topic: `${odd}.g.dlq`, group: 'r' }, dead.handler());
    await broker.subscribe({ topic: defineTopic(odd, { codec }), group: 'g' }, () => {});
    const producer = broker.producer();
    await producer.send({ topic: name, body: 1 });
    await producer.send({ topic: defineTopic(odd, { codec }), body: 2 });
    const got = await dead.waitForCount(2);
    const byCode = Object.fromEntries(got.map((d) => [d.deadLetter?.errorCode, d.deadLetter?.errorMessage]));
    expect(byCode.HANDLER).toBe('an object');
    expect(byCode.DECODE).toContain('an object');
    await broker.close();
  });
});
