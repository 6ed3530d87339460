import 'reflect-metadata';
import { Container } from 'inversify';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { OrderService } from '../../examples/order-service.js';
import { MQ_BROKER, mqkitModule } from '../../src/di/index.js';
import { Collector, waitFor } from '../../src/testing/index.js';

describe('DI: the same service class on different brokers, only MQ_URL changed', () => {
  const saved = process.env.MQ_URL;
  afterEach(() => {
    if (saved === undefined) delete process.env.MQ_URL;
    else process.env.MQ_URL = saved;
  });

  const urls = [
    ['memory', 'memory://di'],
    ['rabbitmq', inject('amqpUrl')],
    ['kafka', inject('kafkaUrl')],
    ['rocketmq', inject('rocketmqUrl')],
  ] as const;

  it.each(urls)('runs OrderService on %s', async (kind, url) => {
    process.env.MQ_URL = url;
    const container = new Container({ autobind: true });
    container.load(mqkitModule());
    const broker = await container.getAsync(MQ_BROKER);
    expect(broker.kind).toBe(kind);
    const group = `di-${Date.now().toString(36)}`;
    await broker.ensureTopic('orders', { partitions: 2 });
    const got = new Collector<{ orderId: string }>();
    await broker.subscribe({ topic: 'orders', group, startFrom: 'latest' }, got.handler());
    const service = await container.getAsync(OrderService);
    const sent = await service.placeOrder({ orderId: `o-${group}`, sku: 'sku-1', quantity: 2 });
    // The example's topic is the fixed 'orders', which other runs may have written to too.
    const mine = await waitFor(() => got.deliveries.find((d) => d.id === sent.id));
    expect(mine).toMatchObject({ key: `o-${group}`, tag: 'placed', body: { orderId: `o-${group}` } });
    await container.unbindAllAsync();
    // Deactivation closed the broker the module opened.
    expect(() => broker.producer()).toThrow(expect.objectContaining({ code: 'CLOSED' }));
  });
});
