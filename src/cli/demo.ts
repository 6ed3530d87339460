import { performance } from 'node:perf_hooks';
import type { StandardSchemaV1 } from '@standard-schema/spec';
import type { Broker, Subscription } from '../core/broker.js';
import { defineTopic } from '../core/codec.js';
import type { Delivery, OutgoingMessage, TopicRef } from '../core/message.js';

/** One event of the order scenario: `seq` 0 is OrderPlaced, 1 is OrderPaid, per order. */
export interface OrderEvent {
  orderId: string;
  seq: number;
  type: 'OrderPlaced' | 'OrderPaid';
  sku: string;
  quantity: number;
  coupon: string | null;
  points: number;
}

export interface DemoSummary {
  url: string;
  orders: number;
  messagesSent: number;
  duplicatesSent: number;
  services: {
    name: string;
    tags: string;
    handled: number;
    duplicatesAbsorbed: number;
    orderViolations: number;
  }[];
  seconds: number;
  throughput: number;
}

const isOrderEvent: StandardSchemaV1<unknown, OrderEvent> = {
  '~standard': {
    version: 1,
    vendor: 'mqkit-demo',
    validate: (value: unknown) =>
      typeof value === 'object' && value !== null && typeof (value as OrderEvent).orderId === 'string'
        ? { value: value as OrderEvent }
        : { issues: [{ message: 'not an order event' }] },
  },
};

/**
 * The seed's order scenario: placing an order publishes OrderPlaced (then OrderPaid) keyed by
 * order id; stock, coupon and points services consume in their own groups, each de-duplicating
 * by message id and checking per-order sequence. Some events are sent twice with the same id,
 * as a producer retrying after a lost acknowledgement would, to show duplicates absorbed.
 */
export async function runDemo(broker: Broker, url: string, orders: number): Promise<DemoSummary> {
  const topic = orderTopic();
  await broker.ensureTopic(topic.name, { partitions: 4 });
  const { stats, finished, close } = await subscribeServices(broker, topic, orders);
  const producer = broker.producer();
  const started = performance.now();
  let sent = 0;
  let duplicates = 0;
  const batchSize = 200;
  for (let first = 0; first < orders; first += batchSize) {
    const batch: OutgoingMessage<OrderEvent>[] = [];
    for (let n = first; n < Math.min(orders, first + batchSize); n++) batch.push(...orderEvents(topic, n));
    const results = await producer.sendBatch(batch as OutgoingMessage<unknown>[]);
    sent += results.length;
    // Every 100th OrderPlaced is sent again with its id: a producer retry after a lost ack.
    const again = batch.filter((m, i) => i % 2 === 0 && Number(m.key?.slice(6)) % 100 === 0);
    for (const m of again) {
      const id = results[batch.indexOf(m)]!.id;
      await producer.send({ ...m, id });
      duplicates++;
    }
  }
  await finished;
  const seconds = (performance.now() - started) / 1000;
  await close();
  await producer.close();
  return {
    url,
    orders,
    messagesSent: sent + duplicates,
    duplicatesSent: duplicates,
    services: stats,
    seconds,
    throughput: ((sent + duplicates) * stats.length) / seconds,
  };
}

/** The demo's typed topic, named for this run. */
export function orderTopic() {
  return defineTopic(`orders-${Date.now().toString(36)}`, { schema: isOrderEvent });
}

/** The two events of order `n`: OrderPlaced (tag 'placed') then OrderPaid (tag 'paid'), keyed by order id. */
export function orderEvents(topic: TopicRef<OrderEvent>, n: number): OutgoingMessage<OrderEvent>[] {
  const orderId = `order-${n}`;
  const base = {
    orderId,
    sku: `sku-${n % 97}`,
    quantity: 1 + (n % 3),
    coupon: n % 5 === 0 ? 'WELCOME10' : null,
  };
  return [
    { topic, key: orderId, tag: 'placed', body: { ...base, seq: 0, type: 'OrderPlaced', points: 0 } },
    {
      topic,
      key: orderId,
      tag: 'paid',
      body: { ...base, seq: 1, type: 'OrderPaid', points: 10 * base.quantity },
    },
  ];
}

/**
 * Subscribes the stock (every event), coupons ('placed') and points ('paid') services, each
 * de-duplicating by message id and checking per-order sequence; `finished` resolves once each
 * handled its share of `orders` orders. `onEvent` sees each first delivery.
 */
export async function subscribeServices(
  broker: Broker,
  topic: TopicRef<OrderEvent>,
  orders: number,
  onEvent?: (d: Delivery<OrderEvent>) => void,
): Promise<{ stats: DemoSummary['services']; finished: Promise<void>; close: () => Promise<void> }> {
  const services = [
    { name: 'stock', tags: undefined, expected: orders * 2 },
    { name: 'coupons', tags: ['placed'], expected: orders },
    { name: 'points', tags: ['paid'], expected: orders },
  ];
  let remaining = services.length;
  let done: () => void = () => {};
  const finished = new Promise<void>((resolve) => {
    done = resolve;
  });
  const stats = services.map((s) => ({
    name: s.name,
    tags: s.tags?.join(',') ?? 'all',
    handled: 0,
    duplicatesAbsorbed: 0,
    orderViolations: 0,
  }));
  const subscriptions: Subscription[] = [];
  for (const [i, service] of services.entries()) {
    const stat = stats[i]!;
    const processed = new Set<string>();
    const lastSeq = new Map<string, number>();
    const handler = (d: Delivery<OrderEvent>) => {
      if (processed.has(d.id)) {
        stat.duplicatesAbsorbed++;
        return;
      }
      processed.add(d.id);
      onEvent?.(d);
      const previous = lastSeq.get(d.body.orderId);
      if (previous !== undefined && d.body.seq <= previous) stat.orderViolations++;
      lastSeq.set(d.body.orderId, d.body.seq);
      if (++stat.handled === service.expected && --remaining === 0) done();
    };
    subscriptions.push(
      await broker.subscribe(
        { topic, group: `demo-${service.name}`, tags: service.tags, order: 'key', concurrency: 8 },
        handler,
      ),
    );
  }
  return {
    stats,
    finished,
    close: async () => void (await Promise.all(subscriptions.map((s) => s.close()))),
  };
}

export function formatDemo(s: DemoSummary): string {
  const lines = [
    `mqkit demo: order scenario on ${s.url}`,
    `  orders placed         ${s.orders}`,
    `  messages sent         ${s.messagesSent} (${s.duplicatesSent} re-sent with the same id)`,
    '  service   tags     handled  duplicates absorbed  per-key order violations',
    ...s.services.map(
      (v) =>
        `  ${v.name.padEnd(9)} ${v.tags.padEnd(7)} ${String(v.handled).padStart(8)}  ${String(v.duplicatesAbsorbed).padStart(19)}  ${String(v.orderViolations).padStart(24)}`,
    ),
    `  time                  ${s.seconds.toFixed(2)} s`,
    `  throughput            ${Math.round(s.throughput).toLocaleString('en-US')} deliveries/s (all services)`,
  ];
  return lines.join('\n');
}
