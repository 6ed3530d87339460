import type { StandardSchemaV1 } from '@standard-schema/spec';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Acks, Backlog, Broker, Capabilities, Subscription } from '../core/broker.js';
import { bytesCodec, type Codec, defineTopic } from '../core/codec.js';
import { isMqError, type MqError } from '../core/errors.js';
import type { Delivery } from '../core/message.js';
import { H } from '../core/wire.js';
import { consumerConformance } from './consumer-conformance.js';
import { Collector, uniqueName, waitFor } from './wait-for.js';

export interface ConformanceOptions {
  /** Shown in test names, e.g. 'kafka'. */
  name: string;
  /** Opens a new connection to the broker under test. Called once per test file and by some tests. */
  connect: () => Promise<Broker>;
  /**
   * What the broker is expected to claim, written out in the test file rather than imported from
   * the adapter: the suite first checks the broker's `capabilities` equal it (a check only if the
   * two are written independently), then lets each flag switch its tests. A test that fits the
   * flag's value runs, its twin for the other value is reported as skipped, and both are named
   * after the flag (`[replay] …`, `[!replay] …`). See `Capabilities` for what each flag switches.
   */
  capabilities: Capabilities;
  /** Longest wait for one condition. Default 30 000 ms. */
  timeoutMs?: number;
}

/** The flags of `Capabilities` that switch tests on and off. */
type Flag = { [K in keyof Capabilities]: Capabilities[K] extends boolean ? K : never }[keyof Capabilities];

/** Every acks level: each is tested as working where `capabilities.acks` lists it, else as refused. */
const ACKS_LEVELS: readonly Acks[] = ['all', 'leader', 'none'];

/** A minimal Standard Schema validator, so the suite does not depend on any schema library. */
const orderSchema: StandardSchemaV1<unknown, { orderId: string; amount: number }> = {
  '~standard': {
    version: 1,
    vendor: 'mqkit-conformance',
    validate(value) {
      const v = value as { orderId?: unknown; amount?: unknown } | null;
      if (
        typeof v === 'object' &&
        v !== null &&
        typeof v.orderId === 'string' &&
        typeof v.amount === 'number'
      ) {
        return { value: v as { orderId: string; amount: number } };
      }
      return { issues: [{ message: 'expected { orderId: string, amount: number }', path: ['amount'] }] };
    },
  },
};

/** Encodes anything as bytes that claim to be JSON but are not: a producer bug, seen from the consumer. */
const brokenJson: Codec<unknown> = {
  contentType: 'application/json',
  encode: () => new TextEncoder().encode('{"not json'),
  decode: () => undefined,
};

/**
 * The one conformance suite every adapter runs unchanged: a function of a broker factory and
 * its capabilities. Call it inside a vitest test file.
 */
export function conformanceSuite(options: ConformanceOptions): void {
  const caps = options.capabilities;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const testTimeout = timeoutMs * 3;

  describe(`conformance: ${options.name}`, () => {
    let broker: Broker;
    const open: Subscription[] = [];

    beforeAll(async () => {
      broker = await options.connect();
      expect(broker.capabilities).toEqual(caps);
    }, testTimeout);

    afterEach(async () => {
      await Promise.allSettled(open.splice(0).map((s) => s.close({ timeoutMs: 1000 })));
    }, testTimeout);

    afterAll(async () => {
      await broker?.close();
    }, testTimeout);

    // Group names are unique per test: on Kafka a group id is cluster-wide, so a name shared by
    // tests (or by test files running at once) would make them one group, rebalancing each other.
    let run = '';
    beforeEach(() => {
      run = uniqueName('r');
    });
    const g = (name: string) => `${name}-${run}`;

    async function subscribe<T>(
      sub: Parameters<Broker['subscribe']>[0],
      handler: (d: Delivery<T>) => Promise<void> | void,
    ): Promise<Subscription> {
      const s = await broker.subscribe(
        sub as Parameters<Broker['subscribe']>[0],
        handler as (d: Delivery) => void,
      );
      open.push(s);
      return s;
    }

    async function topicWith(partitions: number): Promise<string> {
      const topic = uniqueName('conf');
      await broker.ensureTopic(topic, { partitions });
      return topic;
    }

    it(
      'round-trips headers, key, tag, id, binary, unicode, empty and 1 MiB bodies',
      async () => {
        const topic = await topicWith(1);
        const bytesTopic = defineTopic(topic, { codec: bytesCodec });
        const got = new Collector<unknown>();
        await subscribe({ topic: bytesTopic, group: g('g'), order: 'partition' }, got.handler());
        const producer = broker.producer();
        const big = Buffer.alloc(1024 * 1024);
        for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
        const binary = Buffer.from([0, 255, 1, 254, 0, 0, 10, 13]);
        const unicode = Buffer.from('订单 ✓ ünïcødé 🚀', 'utf8');
        const sent = [
          await producer.send({
            topic: bytesTopic,
            body: binary,
            key: 'order-1',
            tag: 'created',
            headers: { 'x-trace': 'abc', 'x-unicode': 'é✓' },
          }),
          await producer.send({ topic: bytesTopic, body: unicode }),
          await producer.send({ topic: bytesTopic, body: Buffer.alloc(0), id: 'my-own-id' }),
          await producer.send({ topic: bytesTopic, body: big }),
        ];
        const [a, b, c, d] = await got.waitForCount(4, timeoutMs);
        expect(Buffer.from(a?.body as Uint8Array)).toEqual(binary);
        expect(a?.key).toBe('order-1');
        expect(a?.tag).toBe('created');
        expect(a?.headers).toEqual({ 'x-trace': 'abc', 'x-unicode': 'é✓' });
        expect(a?.id).toBe(sent[0]?.id);
        expect(a?.attempt).toBe(1);
        expect(a?.topic).toBe(topic);
        expect(typeof a?.timestamp).toBe('number');
        expect(Math.abs((a?.timestamp ?? 0) - Date.now())).toBeLessThan(10 * 60_000);
        expect(Buffer.from(b?.body as Uint8Array).toString('utf8')).toBe('订单 ✓ ünïcødé 🚀');
        expect(c?.body).toHaveLength(0);
        expect(c?.id).toBe('my-own-id');
        expect(Buffer.compare(Buffer.from(d?.body as Uint8Array), big)).toBe(0);
        expect(sent[0]?.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      },
      testTimeout,
    );

    it(
      'JSON is the default body encoding, unicode included',
      async () => {
        const topic = await topicWith(1);
        const got = new Collector();
        await subscribe({ topic, group: g('g') }, got.handler());
        const body = { name: '订单', emoji: '🚀', n: 1.5, list: [1, null, true], nested: { empty: '' } };
        await broker.producer().send({ topic, body });
        await got.waitForCount(1, timeoutMs);
        expect(got.bodies[0]).toEqual(body);
      },
      testTimeout,
    );

    it(
      'sendBatch keeps per-key order and sendOneWay delivers',
      async () => {
        const topic = await topicWith(2);
        const got = new Collector<{ n: number }>();
        await subscribe({ topic, group: g('g'), order: 'key' }, got.handler());
        const producer = broker.producer();
        const results = await producer.sendBatch(
          Array.from({ length: 50 }, (_, n) => ({ topic, key: `k${n % 3}`, body: { n } })),
        );
        expect(results).toHaveLength(50);
        producer.sendOneWay({ topic, key: 'one-way', body: { n: 50 } });
        await got.waitForIds(51, timeoutMs);
        for (const key of ['k0', 'k1', 'k2']) {
          const ns = got.deliveries.filter((d) => d.key === key).map((d) => d.body.n);
          expect(ns).toEqual([...ns].sort((x, y) => x - y));
        }
      },
      testTimeout,
    );

    it(
      'many publishers and subscribers at once lose nothing',
      async () => {
        const topic = await topicWith(4);
        const got = new Collector<{ p: number; i: number }>();
        for (let m = 0; m < 3; m++) {
          await subscribe({ topic, group: g('workers'), order: 'concurrent', concurrency: 4 }, got.handler());
        }
        const producers = Array.from({ length: 4 }, () => broker.producer());
        await Promise.all(
          producers.map(async (producer, p) => {
            const sends = [];
            for (let i = 0; i < 100; i++)
              sends.push(producer.send({ topic, key: `p${p}-${i % 7}`, body: { p, i } }));
            await Promise.all(sends);
          }),
        );
        await got.waitForIds(400, timeoutMs);
        const seen = new Set(got.bodies.map((b) => `${b.p}:${b.i}`));
        expect(seen.size).toBe(400);
      },
      testTimeout,
    );

    it(
      'keeps topics isolated',
      async () => {
        const [t1, t2] = [await topicWith(1), await topicWith(1)];
        const got1 = new Collector<{ t: number }>();
        const got2 = new Collector<{ t: number }>();
        await subscribe({ topic: t1, group: g('g') }, got1.handler());
        await subscribe({ topic: t2, group: g('g') }, got2.handler());
        const producer = broker.producer();
        for (let i = 0; i < 5; i++) {
          await producer.send({ topic: t1, body: { t: 1 } });
          await producer.send({ topic: t2, body: { t: 2 } });
        }
        await got1.waitForCount(5, timeoutMs);
        await got2.waitForCount(5, timeoutMs);
        expect(got1.bodies.every((b) => b.t === 1)).toBe(true);
        expect(got2.bodies.every((b) => b.t === 2)).toBe(true);
        expect(got1.deliveries.every((d) => d.topic === t1)).toBe(true);
      },
      testTimeout,
    );

    it(
      'every group gets every message while members of one group share them',
      async () => {
        const topic = await topicWith(4);
        const stock = [new Collector<{ i: number }>(), new Collector<{ i: number }>()];
        const coupons = new Collector<{ i: number }>();
        for (const c of stock) await subscribe({ topic, group: g('stock'), concurrency: 2 }, c.handler());
        await subscribe({ topic, group: g('coupons') }, coupons.handler());
        const producer = broker.producer();
        await Promise.all(
          Array.from({ length: 200 }, (_, i) => producer.send({ topic, key: `order-${i}`, body: { i } })),
        );
        await coupons.waitForIds(200, timeoutMs);
        await waitFor(() => new Set([...stock[0]!.ids, ...stock[1]!.ids]).size === 200, {
          timeoutMs,
          message: 'stock group did not get all 200',
        });
        expect(stock[0]!.deliveries.length).toBeGreaterThan(0);
        expect(stock[1]!.deliveries.length).toBeGreaterThan(0);
        // Shared, not copied: together the members saw each message about once.
        expect(stock[0]!.deliveries.length + stock[1]!.deliveries.length).toBeLessThan(300);
      },
      testTimeout,
    );

    it(
      'broadcasting delivers every message to every instance',
      async () => {
        const topic = await topicWith(2);
        const instances = [new Collector(), new Collector(), new Collector()];
        for (const c of instances)
          await subscribe({ topic, group: g('cache'), mode: 'broadcasting' }, c.handler());
        const producer = broker.producer();
        for (let i = 0; i < 20; i++) await producer.send({ topic, key: `k${i}`, body: { i } });
        for (const c of instances) await c.waitForIds(20, timeoutMs);
      },
      testTimeout,
    );

    it(
      'filters by tag',
      async () => {
        const topic = await topicWith(2);
        const paid = new Collector();
        const all = new Collector();
        await subscribe({ topic, group: g('paid-only'), tags: ['paid', 'refunded'] }, paid.handler());
        await subscribe({ topic, group: g('everything') }, all.handler());
        const producer = broker.producer();
        const tags = ['created', 'paid', undefined, 'refunded', 'shipped', 'paid'];
        for (const [i, tag] of tags.entries()) await producer.send({ topic, key: `o${i}`, tag, body: { i } });
        await all.waitForCount(6, timeoutMs);
        await paid.waitForCount(3, timeoutMs);
        // Sent after everything else: once it arrives, no stray tag can still be on its way.
        await producer.send({ topic, key: 'o0', tag: 'paid', body: { last: true } });
        await paid.waitForCount(4, timeoutMs);
        expect(paid.deliveries.map((d) => d.tag).sort()).toEqual(['paid', 'paid', 'paid', 'refunded']);
      },
      testTimeout,
    );

    it(
      'members of one group that pass other orders share its messages, or the later one is refused',
      async () => {
        const topic = await topicWith(2);
        const keyed = new Collector<{ i: number }>();
        const free = new Collector<{ i: number }>();
        await subscribe({ topic, group: g('mixed'), order: 'key' }, keyed.handler());
        const second = await subscribe(
          { topic, group: g('mixed'), order: 'concurrent' },
          free.handler(),
        ).then(
          () => undefined,
          (error: unknown) => error,
        );
        // RabbitMQ reads other queues for the two orders: it refuses; the others share.
        if (second !== undefined) expect(isMqError(second, 'CONFIG')).toBe(true);
        const producer = broker.producer();
        for (let i = 0; i < 40; i++) await producer.send({ topic, key: `k${i}`, body: { i } });
        await waitFor(() => new Set([...keyed.ids, ...free.ids]).size === 40, {
          timeoutMs,
          message: () => `the group handled ${new Set([...keyed.ids, ...free.ids]).size} of 40`,
        });
        // Sent last: once it is handled, nothing of the 40 can still be on its way.
        await producer.send({ topic, key: 'k0', body: { i: 40 } });
        await waitFor(() => keyed.deliveries.length + free.deliveries.length >= 41, { timeoutMs });
        expect(keyed.deliveries.length + free.deliveries.length).toBe(41);
      },
      testTimeout,
    );

    it(
      "refuses a member whose tags differ from those of its group's running members",
      async () => {
        const topic = await topicWith(1);
        await subscribe({ topic, group: g('tagged'), tags: ['paid', 'refunded'] }, () => {});
        // Each member filters in what it owns: other tags would skip the others' messages.
        const error = await subscribe({ topic, group: g('tagged'), tags: ['created'] }, () => {}).catch(
          (e: unknown) => e,
        );
        expect(isMqError(error, 'CONFIG')).toBe(true);
        expect((error as { field?: string }).field).toBe('subscribe.tags');
        // The same tags in another order, and other tags in another group, are welcome.
        await subscribe({ topic, group: g('tagged'), tags: ['refunded', 'paid'] }, () => {});
        await subscribe({ topic, group: g('other-tags'), tags: ['created'] }, () => {});
      },
      testTimeout,
    );

    it(
      'keeps a message sent after ensureTopic and before any group subscribed, for the first group (the README tour)',
      async () => {
        const topic = uniqueName('tour');
        await broker.ensureTopic(topic, { partitions: 4 });
        const producer = broker.producer();
        const { id } = await producer.send({
          topic,
          key: 'order-42',
          tag: 'placed',
          body: { orderId: 'order-42' },
        });
        // A tag no group takes yet is stored too, not refused.
        await producer.send({ topic, key: 'order-42', tag: 'paid', body: { orderId: 'order-42' } });
        const got = new Collector<{ orderId: string }>();
        await subscribe({ topic, group: g('billing'), order: 'key', tags: ['placed'] }, got.handler());
        const [d] = await got.waitForCount(1, timeoutMs);
        expect(d?.id).toBe(id);
        expect(d?.idOrigin).toBe('message');
        expect(d?.tag).toBe('placed');
        const all = new Collector();
        await subscribe({ topic, group: g('audit') }, all.handler());
        await producer.send({ topic, key: 'order-42', tag: 'shipped', body: { orderId: 'order-42' } });
        // Kafka and memory keep all three for a new group; RabbitMQ kept the one no group took.
        await waitFor(() => all.deliveries.some((x) => x.tag === 'shipped'), { timeoutMs });
        expect(all.deliveries.some((x) => x.tag === 'paid')).toBe(true);
      },
      testTimeout,
    );

    it(
      'redelivers a failed message with its attempt count',
      async () => {
        const topic = await topicWith(1);
        const attempts: number[] = [];
        await subscribe<{ id: number }>(
          { topic, group: g('g'), retry: { attempts: 5, backoff: { initialMs: 50, maxMs: 200 } } },
          (d) => {
            attempts.push(d.attempt);
            if (d.attempt < 3) throw new Error(`transient failure ${d.attempt}`);
          },
        );
        await broker.producer().send({ topic, body: { id: 1 } });
        await waitFor(() => attempts.length >= 3, { timeoutMs, message: () => `attempts ${attempts}` });
        expect(attempts.slice(0, 3)).toEqual([1, 2, 3]);
      },
      testTimeout,
    );

    it(
      'dead-letters a message whose attempts are exhausted, with the error recorded, while the rest flow',
      async () => {
        const topic = await topicWith(2);
        const dead = new Collector();
        const dlq = `${topic}.${g('g')}.dlq`;
        await broker.ensureTopic(dlq, { partitions: 1 });
        await subscribe({ topic: dlq, group: g('dlq-reader') }, dead.handler());
        const ok = new Collector<{ n: number }>();
        const tries = new Map<number, number>();
        await subscribe<{ n: number; poison?: boolean }>(
          {
            topic,
            group: g('g'),
            order: 'concurrent',
            concurrency: 2,
            retry: { attempts: 3, backoff: { initialMs: 20, maxMs: 100 } },
          },
          async (d) => {
            tries.set(d.body.n, (tries.get(d.body.n) ?? 0) + 1);
            if (d.body.poison) throw new Error('cannot ship to the moon');
            ok.deliveries.push(d as Delivery<{ n: number }>);
          },
        );
        const producer = broker.producer();
        await producer.send({
          topic,
          key: 'poison',
          body: { n: 0, poison: true },
          headers: { 'x-origin': 'test' },
        });
        for (let n = 1; n <= 20; n++) await producer.send({ topic, key: `k${n}`, body: { n } });
        await ok.waitForIds(20, timeoutMs);
        const [d] = await dead.waitForCount(1, timeoutMs);
        expect(d?.body).toEqual({ n: 0, poison: true });
        expect(d?.headers['x-origin']).toBe('test');
        expect(tries.get(0)).toBe(3);
        expect(d?.key).toBe('poison');
        expect(d?.headers[H.errorMessage]).toBeUndefined(); // mqkit's headers are parsed, not passed through
        expect(d?.deadLetter).toMatchObject({
          errorCode: 'HANDLER',
          errorName: 'Error',
          originalTopic: topic,
          originalGroup: g('g'),
          attempts: 3,
        });
        expect(d?.deadLetter?.errorMessage).toContain('cannot ship to the moon');
        expect(Number.isNaN(Date.parse(d?.deadLetter?.failedAt ?? ''))).toBe(false);
      },
      testTimeout,
    );

    it(
      'sends an undecodable or schema-invalid message to dead-letter with a DecodeError and keeps going',
      async () => {
        const topic = await topicWith(1);
        const typed = defineTopic(topic, { schema: orderSchema });
        const dlq = `${topic}.${g('billing')}.dlq`;
        await broker.ensureTopic(dlq, { partitions: 1 });
        const dead = new Collector();
        await subscribe(
          { topic: defineTopic(dlq, { codec: bytesCodec }), group: g('dlq-reader') },
          dead.handler(),
        );
        const ok = new Collector<{ orderId: string; amount: number }>();
        await subscribe({ topic: typed, group: g('billing'), order: 'partition' }, ok.handler());
        const producer = broker.producer();
        await producer.send({ topic, body: { orderId: 'a', amount: 1 } });
        await producer.send({ topic, body: { orderId: 'b', amount: 'lots' } }); // schema-invalid
        await producer.send({ topic: defineTopic(topic, { codec: brokenJson }), body: null }); // undecodable
        await producer.send({ topic, body: { orderId: 'c', amount: 3 } });
        await ok.waitForCount(2, timeoutMs);
        expect(ok.bodies.map((b) => b.orderId)).toEqual(['a', 'c']);
        const dl = await dead.waitForCount(2, timeoutMs);
        expect(dl.map((d) => d.deadLetter?.errorCode)).toEqual(['DECODE', 'DECODE']);
        expect(dl[0]?.deadLetter?.errorMessage).toContain('schema');
        expect(Buffer.from(dl[1]?.body as Uint8Array).toString()).toBe('{"not json');
        // A typed producer refuses an invalid body before it reaches the broker.
        await expect(producer.send({ topic: typed, body: { orderId: 'x' } as never })).rejects.toMatchObject({
          code: 'DECODE',
        });
      },
      testTimeout,
    );

    it(
      'keeps per-key order with concurrency > 1 while a member joins and another leaves',
      async () => {
        const topic = await topicWith(4);
        const keys = 20;
        const perKey = 60;
        const last = new Map<string, number>();
        const seen = new Set<string>();
        let violations = 0;
        let duplicates = 0;
        const handler = async (d: Delivery<{ seq: number }>) => {
          // Work of uneven length first, so that unordered processing would finish out of order.
          await new Promise((resolve) => setTimeout(resolve, (d.body.seq * 7 + Number(d.key?.slice(4))) % 3));
          if (seen.has(d.id)) {
            duplicates++;
            return;
          }
          const previous = last.get(d.key as string) ?? -1;
          if (d.body.seq !== previous + 1) violations++;
          last.set(d.key as string, d.body.seq);
          seen.add(d.id);
        };
        const sub = { topic, group: g('ordered'), order: 'key' as const, concurrency: 4 };
        const first = await subscribe(sub, handler);
        const producer = broker.producer();
        const sendRound = async (seq: number) => {
          await producer.sendBatch(
            Array.from({ length: keys }, (_, k) => ({ topic, key: `key-${k}`, body: { seq } })),
          );
        };
        for (let seq = 0; seq < perKey / 3; seq++) await sendRound(seq);
        await subscribe(sub, handler);
        for (let seq = perKey / 3; seq < (2 * perKey) / 3; seq++) await sendRound(seq);
        await first.close();
        for (let seq = (2 * perKey) / 3; seq < perKey; seq++) await sendRound(seq);
        await waitFor(() => seen.size === keys * perKey, {
          timeoutMs: timeoutMs * 2,
          message: () => `received ${seen.size} of ${keys * perKey} (${duplicates} duplicates)`,
        });
        expect(violations).toBe(0);
        for (let k = 0; k < keys; k++) expect(last.get(`key-${k}`)).toBe(perKey - 1);
      },
      testTimeout * 2,
    );

    it(
      'close lets in-flight handlers finish; a consumer closed and reopened loses nothing',
      async () => {
        const topic = await topicWith(2);
        const done = new Set<number>();
        let fiveStarted = false;
        let inFlight = 0;
        let release: () => void = () => {};
        const gate = new Promise<void>((resolve) => {
          release = resolve;
        });
        const handler = async (d: Delivery<{ i: number }>) => {
          inFlight++;
          if (d.body.i === 5) {
            fiveStarted = true;
            await gate; // held until close is waiting on it alone
          }
          await new Promise((resolve) => setTimeout(resolve, 1));
          done.add(d.body.i);
          inFlight--;
        };
        const sub = { topic, group: g('restart'), concurrency: 3, order: 'concurrent' as const };
        const first = await broker.subscribe(sub, handler);
        const producer = broker.producer();
        await Promise.all(
          Array.from({ length: 100 }, (_, i) => producer.send({ topic, key: `k${i}`, body: { i } })),
        );
        await waitFor(() => fiveStarted, { timeoutMs });
        let closed = false;
        const closing = first.close({ timeoutMs }).then(() => {
          closed = true;
        });
        // Close takes no new deliveries and lets the others finish, but must wait for message 5.
        await waitFor(() => inFlight === 1 || closed, { timeoutMs });
        expect(closed).toBe(false);
        release();
        await closing;
        expect(inFlight).toBe(0);
        expect(done.has(5)).toBe(true);
        const second = await subscribe(sub, handler);
        await waitFor(() => done.size === 100, {
          timeoutMs,
          message: () => `${done.size} of 100 after reopen`,
        });
        await second.close();
      },
      testTimeout,
    );

    it(
      'aborts the signal of a handler still running when close times out, and delivers its message again',
      async () => {
        const topic = await topicWith(1);
        const sub = { topic, group: g('stuck'), closeTimeoutMs: 300 };
        let sawAbort = false;
        let started = false;
        const first = await broker.subscribe(sub, async (d) => {
          started = true;
          await new Promise<void>((resolve) =>
            d.signal.addEventListener('abort', () => resolve(), { once: true }),
          );
          sawAbort = true;
          throw new Error('gave up on shutdown');
        });
        const { id } = await broker.producer().send({ topic, body: { stuck: true } });
        await waitFor(() => started, { timeoutMs });
        await first.close();
        expect(sawAbort).toBe(true);
        const again = new Collector();
        await subscribe(sub, again.handler());
        const [d] = await again.waitForCount(1, timeoutMs);
        expect(d?.id).toBe(id);
      },
      testTimeout,
    );

    it(
      'reports backlog as sent minus consumed',
      async () => {
        const topic = await topicWith(2);
        const got = new Collector();
        const sub = await subscribe({ topic, group: g('lagging') }, got.handler());
        const producer = broker.producer();
        for (let i = 0; i < 10; i++) await producer.send({ topic, key: `k${i}`, body: { i } });
        await got.waitForIds(10, timeoutMs);
        await sub.close();
        for (let i = 0; i < 7; i++) await producer.send({ topic, key: `k${i}`, body: { i } });
        const backlog = await waitFor(
          async () => {
            const b = await broker.backlog(topic, g('lagging'));
            return b.total === 7 ? b : undefined;
          },
          { timeoutMs, message: 'backlog never reached 7' },
        );
        expect(backlog.partitions.reduce((sum, p) => sum + p.backlog, 0)).toBe(7);
        expect(backlog.topic).toBe(topic);
        expect(backlog.group).toBe(g('lagging'));
      },
      testTimeout,
    );

    // Tests switched by capability flags. Each flag has a test for each value, named `[flag]` or
    // `[!flag]` (`[acks:<level>]` / `[!acks:<level>]` per level): the one that fits the broker
    // runs and its twin is reported as skipped, so the output shows what each flag switched.
    // `durable` and `maxMessageBytes` switch nothing; their tests run on every broker, named
    // after the value (see `Capabilities` for why).

    /** A test that runs where `caps[flag]` is `value` (else reported skipped), named after both. */
    const feature = (flag: Flag, value: boolean, name: string, body: () => Promise<void>) =>
      it.runIf(caps[flag] === value)(`[${value ? '' : '!'}${flag}] ${name}`, body, testTimeout);

    /**
     * A key whose first message fails until `release()` (or, if `release` is undefined, twice),
     * a second message of that key, and three of a healthy key, on a 1-partition topic with
     * order 'key': returns what was handled, in order, each marked ' during' if handled while
     * the failing message was still retrying.
     */
    async function retryingKey(isolated: boolean): Promise<string[]> {
      const topic = await topicWith(1);
      const handled: string[] = [];
      let poisonAttempts = 0;
      let poisonDone = false;
      await subscribe<{ k: string; n: number }>(
        {
          topic,
          group: g('g'),
          order: 'key',
          retry: { attempts: 1000, backoff: { initialMs: 20, maxMs: 50 } },
        },
        (d) => {
          if (d.body.k === 'poison') {
            poisonAttempts++;
            // Isolated: it fails until the healthy key is through, which can only happen if the
            // healthy key is not stuck behind it. Not isolated: it fails twice.
            if (isolated ? !handled.includes('h2 during') : poisonAttempts < 3) throw new Error('not yet');
            poisonDone = true;
            return;
          }
          handled.push(`${d.body.k}${d.body.n}${poisonDone ? '' : ' during'}`);
        },
      );
      const producer = broker.producer();
      await producer.send({ topic, key: 'poison', body: { k: 'poison', n: 0 } });
      await producer.send({ topic, key: 'poison', body: { k: 'p', n: 1 } });
      for (let n = 0; n < 3; n++) await producer.send({ topic, key: 'healthy', body: { k: 'h', n } });
      await waitFor(
        () =>
          handled.some((h) => h.startsWith('p1')) &&
          (isolated ? handled.includes('h2 during') : handled.some((h) => h.startsWith('h2'))),
        {
          timeoutMs,
          message: () => `handled ${JSON.stringify(handled)} after ${poisonAttempts} poison attempts`,
        },
      );
      expect(poisonAttempts).toBeGreaterThan(isolated ? 1 : 2);
      // Either way the failing key's next message waited until the failing one was through.
      expect(handled.find((h) => h.startsWith('p1'))).toBe('p1');
      return handled;
    }

    feature(
      'keyIsolation',
      true,
      'with order key and concurrency 1, a retrying message holds up only its own key',
      async () => {
        const handled = await retryingKey(true);
        expect(handled.filter((h) => h.startsWith('h'))).toEqual(['h0 during', 'h1 during', 'h2 during']);
      },
    );

    feature(
      'keyIsolation',
      false,
      'with order key, a retrying message may hold up other keys of its partition; every key keeps its order',
      async () => {
        const handled = await retryingKey(false);
        // Not asserted: whether the healthy key waited. A FIFO receive can hand out messages of
        // several keys at once, and those already handed out go on while the poison retries.
        expect(handled.filter((h) => h.startsWith('h')).map((h) => h.split(' ')[0])).toEqual([
          'h0',
          'h1',
          'h2',
        ]);
      },
    );

    feature(
      'replay',
      true,
      'starts a new group at a timestamp: it gets what was sent from then on',
      async () => {
        const topic = await topicWith(2);
        const producer = broker.producer();
        for (let i = 0; i < 5; i++)
          await producer.send({ topic, key: `k${i}`, body: { i, phase: 'before' } });
        const cut = Date.now() + 20;
        await waitFor(() => Date.now() > cut + 20, { intervalMs: 5 });
        for (let i = 0; i < 5; i++) await producer.send({ topic, key: `k${i}`, body: { i, phase: 'after' } });
        const fromCut = new Collector<{ phase: string }>();
        await subscribe({ topic, group: g('replay-cut'), startFrom: { timestamp: cut } }, fromCut.handler());
        await fromCut.waitForCount(5, timeoutMs);
        expect(fromCut.bodies.map((b) => b.phase)).toEqual(Array(5).fill('after'));
      },
    );

    feature('replay', false, 'refuses startFrom { timestamp } with UnsupportedError', async () => {
      const topic = await topicWith(2);
      await expect(
        broker.subscribe({ topic, group: g('replay'), startFrom: { timestamp: Date.now() } }, () => {}),
      ).rejects.toMatchObject({ code: 'UNSUPPORTED' });
    });

    /**
     * A group consumes three messages; then a new group subscribes with startFrom 'earliest' and
     * a fourth is sent. Returns what the new group got once the fourth arrived (one partition,
     * one handler at a time: anything stored for it before the fourth arrived first).
     */
    async function earliestAfterAnotherGroup(): Promise<number[]> {
      const topic = await topicWith(1);
      const first = new Collector<{ n: number }>();
      await subscribe({ topic, group: g('first') }, first.handler());
      const producer = broker.producer();
      for (let n = 0; n < 3; n++) await producer.send({ topic, body: { n } });
      await first.waitForCount(3, timeoutMs);
      const late = new Collector<{ n: number }>();
      await subscribe({ topic, group: g('late'), startFrom: 'earliest' }, late.handler());
      await producer.send({ topic, body: { n: 3 } });
      await waitFor(() => late.bodies.some((b) => b.n === 3), {
        timeoutMs,
        message: () => `the new group got ${JSON.stringify(late.bodies)}`,
      });
      return late.bodies.map((b) => b.n);
    }

    feature(
      'replay',
      true,
      "a new group starting from 'earliest' re-reads what another group consumed",
      async () => {
        expect(await earliestAfterAnotherGroup()).toEqual([0, 1, 2, 3]);
      },
    );

    feature(
      'replay',
      false,
      "a new group starting from 'earliest' gets what is sent once it exists, not what another group consumed",
      async () => {
        expect(await earliestAfterAnotherGroup()).toEqual([3]);
      },
    );

    /**
     * A group taking tag 'paid' handles one message and stops; while no member runs, five are
     * sent, two of them 'paid'. Checks the group's backlog is then `whileAway` and that a member
     * started again handles the two 'paid' ones alone and leaves a backlog of 0.
     */
    async function taggedGroupBacklog(whileAway: number): Promise<void> {
      const topic = await topicWith(1);
      const group = g('paid-only');
      const got = new Collector<{ n: number }>();
      const first = await subscribe({ topic, group, tags: ['paid'] }, got.handler());
      const producer = broker.producer();
      await producer.send({ topic, tag: 'paid', body: { n: 0 } });
      await got.waitForCount(1, timeoutMs);
      await first.close();
      const tags = ['created', 'paid', 'created', 'created', 'paid'];
      for (const [i, tag] of tags.entries()) await producer.send({ topic, tag, body: { n: i + 1 } });
      const backlogReaches = (total: number) => {
        let last: number | undefined;
        return waitFor(
          async () => {
            last = (await broker.backlog(topic, group)).total;
            return last === total;
          },
          { timeoutMs, message: () => `backlog of ${group} is ${last}, expected ${total}` },
        );
      };
      await backlogReaches(whileAway);
      const again = await subscribe({ topic, group, tags: ['paid'] }, got.handler());
      // The last message sent is 'paid': once handled, every one before it was handled or skipped.
      await got.waitForCount(3, timeoutMs);
      await again.close();
      expect(got.bodies.map((b) => b.n)).toEqual([0, 2, 5]);
      await backlogReaches(0);
    }

    feature(
      'brokerSideTagFilter',
      true,
      "a group's backlog holds only the tags it subscribed to: the broker stores no other for it",
      () => taggedGroupBacklog(2),
    );

    feature(
      'brokerSideTagFilter',
      false,
      "a group's backlog holds messages of every tag until a member skips the others (acknowledged, not handled)",
      () => taggedGroupBacklog(5),
    );

    const partitionNumbers = (backlog: Backlog) =>
      backlog.partitions.map((p) => p.partition).sort((a, b) => a - b);

    feature(
      'partitions',
      true,
      'ensureTopic({ partitions: 3 }) numbers them 0-2 in backlog and deliveries, a key keeps to one, and a later ensureTopic raises the count, never lowers it',
      async () => {
        const topic = await topicWith(3);
        const got = new Collector<{ k: number }>();
        await subscribe({ topic, group: g('keyed'), order: 'key' }, got.handler());
        const producer = broker.producer();
        const keys = 20;
        for (let round = 0; round < 2; round++)
          for (let k = 0; k < keys; k++) await producer.send({ topic, key: `key-${k}`, body: { k } });
        await got.waitForIds(2 * keys, timeoutMs);
        const partitionsOf = new Map<string | undefined, Set<number | undefined>>();
        for (const d of got.deliveries)
          partitionsOf.set(d.key, (partitionsOf.get(d.key) ?? new Set()).add(d.partition));
        for (const [key, ps] of partitionsOf) expect([...ps], `partitions of ${key}`).toHaveLength(1);
        const used = new Set(got.deliveries.map((d) => d.partition));
        expect(
          [...used].every((p) => p === 0 || p === 1 || p === 2),
          `partitions used: ${[...used]}`,
        ).toBe(true);
        expect(used.size).toBeGreaterThan(1); // 20 keys in one of 3 partitions: a hash that ignores keys
        expect(partitionNumbers(await broker.backlog(topic, g('keyed')))).toEqual([0, 1, 2]);
        await broker.ensureTopic(topic, { partitions: 5 });
        await broker.ensureTopic(topic, { partitions: 2 });
        await subscribe({ topic, group: g('later'), order: 'key' }, () => {});
        let numbers: number[] = [];
        await waitFor(
          async () => {
            numbers = partitionNumbers(await broker.backlog(topic, g('later')));
            return numbers.length === 5;
          },
          { timeoutMs, message: () => `backlog lists partitions ${numbers}` },
        );
        expect(numbers).toEqual([0, 1, 2, 3, 4]);
      },
    );

    feature(
      'partitions',
      false,
      'ensureTopic refuses more than one partition with UnsupportedError; one is accepted and backlog lists it alone',
      async () => {
        const topic = uniqueName('conf');
        await expect(broker.ensureTopic(topic, { partitions: 2 })).rejects.toMatchObject({
          code: 'UNSUPPORTED',
        });
        await broker.ensureTopic(topic, { partitions: 1 });
        const got = new Collector();
        await subscribe({ topic, group: g('g'), order: 'key' }, got.handler());
        await broker.producer().send({ topic, key: 'k', body: {} });
        await got.waitForCount(1, timeoutMs);
        expect((await broker.backlog(topic, g('g'))).partitions).toHaveLength(1);
      },
    );

    /**
     * Sends a message with `delayMs` and one without; the undelayed one overtakes, and the
     * delayed one arrives never early, with the id, key, tag, headers and send time it was sent
     * with (where the delay is made of hops, each hop is a copy).
     */
    async function delayedArrivesAsSent(delayMs: number): Promise<void> {
      const topic = await topicWith(1);
      const got = new Collector<{ delayed: boolean }>();
      const receivedAt = new Map<string, number>();
      await subscribe(
        { topic, group: g('g') },
        got.handler((d) => {
          receivedAt.set(d.id, Date.now());
        }),
      );
      const producer = broker.producer();
      const before = Date.now();
      const { id } = await producer.send({
        topic,
        key: 'k-delayed',
        tag: 'later',
        headers: { 'x-trace': 'delayed' },
        body: { delayed: true },
        delayMs,
      });
      const after = Date.now();
      await producer.send({ topic, body: { delayed: false } });
      const [first, second] = await got.waitForCount(2, timeoutMs);
      expect(first?.body.delayed).toBe(false); // the undelayed one overtakes
      expect(second).toMatchObject({
        id,
        key: 'k-delayed',
        tag: 'later',
        headers: { 'x-trace': 'delayed' },
        body: { delayed: true },
        attempt: 1,
        topic,
      });
      expect(second?.timestamp).toBeGreaterThanOrEqual(before);
      expect(second?.timestamp).toBeLessThanOrEqual(after);
      expect((receivedAt.get(id) ?? 0) - before).toBeGreaterThanOrEqual(delayMs); // never early
    }

    feature('nativeDelay', true, 'delays delivery by delayMs, never early, as the message sent', () =>
      delayedArrivesAsSent(1500),
    );

    feature(
      'nativeDelay',
      false,
      "a delay spanning several of the adapter's delay tiers (2.7 s) arrives never early, as the message sent",
      () => delayedArrivesAsSent(2700),
    );

    it(
      `[${caps.durable ? '' : '!'}durable] a message sent with acks 'all' is stored by the broker once send resolved: counted in the backlog of a group with no member running, delivered after the sending connection closed`,
      async () => {
        // What `durable` adds (surviving a broker restart) needs a restart: integration tests.
        const topic = await topicWith(1);
        const group = g('absent');
        await (await subscribe({ topic, group }, () => {})).close();
        const sender = await options.connect();
        let id: string;
        try {
          ({ id } = await sender.producer({ acks: 'all' }).send({ topic, body: { kept: true } }));
          expect((await broker.backlog(topic, group)).total).toBe(1);
        } finally {
          await sender.close();
        }
        const got = new Collector();
        await subscribe({ topic, group }, got.handler());
        const [d] = await got.waitForCount(1, timeoutMs);
        expect(d?.id).toBe(id);
      },
      testTimeout,
    );

    for (const acks of ACKS_LEVELS) {
      const claimed = caps.acks.includes(acks);
      it.runIf(claimed)(
        `[acks:${acks}] a producer with acks '${acks}' sends, and the message is delivered`,
        async () => {
          const topic = await topicWith(1);
          const got = new Collector<{ acks: Acks }>();
          await subscribe({ topic, group: g('g') }, got.handler());
          const producer = broker.producer({ acks });
          const { id } = await producer.send({ topic, body: { acks } });
          await producer.close();
          const [d] = await got.waitForCount(1, timeoutMs);
          expect(d?.id).toBe(id);
          expect(d?.body).toEqual({ acks });
        },
        testTimeout,
      );
      it.runIf(!claimed)(
        `[!acks:${acks}] producer({ acks: '${acks}' }) is refused with UnsupportedError`,
        () => {
          expect(() => broker.producer({ acks })).toThrow(expect.objectContaining({ code: 'UNSUPPORTED' }));
        },
      );
    }

    it(
      `[maxMessageBytes=${caps.maxMessageBytes}] delivers a body of exactly that many bytes; send and sendBatch refuse one byte more before sending anything, with a non-retriable PublishError`,
      async () => {
        const max = caps.maxMessageBytes;
        const topic = defineTopic(await topicWith(1), { codec: bytesCodec });
        const got = new Collector<Uint8Array>();
        await subscribe({ topic, group: g('g'), order: 'partition' }, got.handler());
        const producer = broker.producer();
        const largest = Buffer.alloc(max, 7);
        const tooLarge = Buffer.alloc(max + 1, 9);
        const { id } = await producer.send({ topic, body: largest });
        const refused = (sending: Promise<unknown>) =>
          sending.then(
            () => 'sent',
            (error: unknown) => error,
          );
        for (const error of [
          await refused(producer.send({ topic, body: tooLarge })),
          await refused(
            producer.sendBatch([
              { topic, body: Buffer.from('batched') },
              { topic, body: tooLarge },
            ]),
          ),
        ]) {
          expect(isMqError(error, 'PUBLISH'), String(error)).toBe(true);
          expect((error as MqError).retriable).toBe(false);
        }
        // Sent last to one partition: had anything refused been sent, it would arrive before.
        await producer.send({ topic, body: Buffer.from('last') });
        const [big, last] = await got.waitForCount(2, timeoutMs);
        expect(big?.id).toBe(id);
        expect(Buffer.compare(Buffer.from(big?.body as Uint8Array), largest)).toBe(0);
        expect(Buffer.from(last?.body as Uint8Array).toString()).toBe('last');
        expect(got.deliveries).toHaveLength(2);
      },
      testTimeout,
    );

    consumerConformance({
      broker: () => broker,
      connect: options.connect,
      track: (subscription) => {
        open.push(subscription);
        return subscription;
      },
      topicWith,
      group: g,
      timeoutMs,
      testTimeout,
    });

    it('refuses bad options with a ConfigError naming the field', async () => {
      const topic = uniqueName('conf');
      const cases: [() => unknown, string][] = [
        [
          () => broker.subscribe({ topic, group: g('g'), concurency: 2 } as never, () => {}),
          'subscribe.concurency',
        ],
        [() => broker.subscribe({ topic } as never, () => {}), 'subscribe.group'],
        [
          () => broker.subscribe({ topic, group: g('g'), retry: { attempts: 0 } }, () => {}),
          'subscribe.retry.attempts',
        ],
        [() => broker.producer({ acks: 'none', idempotent: true }), 'producer.idempotent'],
        [
          () => broker.producer().send({ topic, body: 1, headers: { 'mq-id': 'x' } }),
          'message.headers.mq-id',
        ],
        [() => broker.producer().send({ topic: 'bad topic!', body: 1 }), 'message.topic'],
      ];
      for (const [call, field] of cases) {
        let error: unknown;
        try {
          await call();
        } catch (e) {
          error = e;
        }
        expect(isMqError(error, 'CONFIG'), `${field}: ${String(error)}`).toBe(true);
        expect((error as { field: string }).field).toBe(field);
        expect((error as Error).message).toContain(field);
      }
    });
  });
}
