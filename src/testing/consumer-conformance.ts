import { expect, it } from 'vitest';
import type { Broker, Subscription } from '../core/broker.js';
import { isMqError } from '../core/errors.js';
import type { MqEventName, MqEvents } from '../core/events.js';
import type { BatchFailures, Delivery } from '../core/message.js';
import type { SubscribeOptions } from '../core/options.js';
import { Collector, waitFor } from './wait-for.js';

/** What the consumer-side tests need from the suite around them. */
export interface ConsumerSuiteContext {
  broker: () => Broker;
  /** Opens another connection, for tests that close one. */
  connect: () => Promise<Broker>;
  /** Subscribes and closes the subscription after the test. */
  track: (subscription: Subscription) => Subscription;
  topicWith: (partitions: number) => Promise<string>;
  /** A group name unique to the running test. */
  group: (name: string) => string;
  timeoutMs: number;
  testTimeout: number;
}

/** A promise and its resolver, for handlers that must wait for the test. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open = () => {};
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

/** Every event of `names` for `topic`, in order, until the returned function is called. */
function recordEvents(broker: Broker, topic: string, names: readonly MqEventName[]) {
  const seen: { name: MqEventName; event: MqEvents[MqEventName] }[] = [];
  const stops = names.map((name) =>
    broker.on(name, (event) => {
      if ('topic' in event && event.topic === topic) seen.push({ name, event });
    }),
  );
  return {
    seen,
    stop: () => {
      for (const stop of stops) stop();
    },
  };
}

/**
 * The consumer engine's contract, the same on every broker: its events, batch handlers, pull
 * consumption, pause and resume, runtime concurrency, and close. Part of `conformanceSuite`.
 */
export function consumerConformance(ctx: ConsumerSuiteContext): void {
  const { timeoutMs, testTimeout } = ctx;

  it(
    'reports each outcome as an event: handled; failed, retried and then dead-lettered',
    async () => {
      const broker = ctx.broker();
      const topic = await ctx.topicWith(1);
      const events = recordEvents(broker, topic, [
        'delivered',
        'handled',
        'failed',
        'retried',
        'dead-lettered',
      ]);
      const spy = new Collector();
      const stopWatching = spy.watch(broker, topic);
      try {
        ctx.track(
          await broker.subscribe(
            {
              topic,
              group: ctx.group('events'),
              retry: { attempts: 3, backoff: { initialMs: 10, maxMs: 20 } },
            },
            spy.handler((d) => {
              if (d.key === 'bad') throw new Error(`refused on attempt ${d.attempt}`);
            }),
          ),
        );
        const producer = broker.producer();
        const good = await producer.send({ topic, body: 1, key: 'good' });
        const bad = await producer.send({ topic, body: 2, key: 'bad' });
        await spy.waitForOutcome(good.id, 'handled', timeoutMs);
        await spy.waitForOutcome(bad.id, 'dead-lettered', timeoutMs);
        const of = (id: string) =>
          events.seen
            .filter((e) => (e.event as { id?: string }).id === id)
            .map((e) => `${e.name}:${(e.event as { attempt: number }).attempt}`);
        expect(of(good.id)).toEqual(['delivered:1', 'handled:1']);
        expect(of(bad.id)).toEqual([
          'delivered:1',
          'failed:1',
          'retried:2',
          'delivered:2',
          'failed:2',
          'retried:3',
          'delivered:3',
          'failed:3',
          'dead-lettered:3',
        ]);
        const failed = events.seen
          .filter((e) => e.name === 'failed')
          .map((e) => e.event as MqEvents['failed']);
        expect(failed.map((f) => f.next)).toEqual(['retry', 'retry', 'dead-letter']);
        expect(failed[2]?.error).toMatchObject({ message: 'refused on attempt 3' });
        const dead = events.seen.find((e) => e.name === 'dead-lettered')?.event as MqEvents['dead-lettered'];
        expect(dead).toMatchObject({
          broker: broker.kind,
          topic,
          deadLetterTopic: `${topic}.${ctx.group('events')}.dlq`,
        });
      } finally {
        events.stop();
        stopWatching();
      }
    },
    testTimeout,
  );

  it(
    'hands a batch handler arrays in stored order per key, with one outcome per delivery',
    async () => {
      const broker = ctx.broker();
      const topic = await ctx.topicWith(1);
      const batches: Delivery<{ key: string; seq: number }>[][] = [];
      let failedOnce = false;
      ctx.track(
        await broker.subscribe<{ key: string; seq: number }>(
          {
            topic,
            group: ctx.group('batch'),
            order: 'key',
            batch: { maxSize: 8, maxWaitMs: 20 },
            retry: { attempts: 2, backoff: { initialMs: 10, maxMs: 20 } },
          },
          async (deliveries) => {
            batches.push([...deliveries]);
            const failures = new Map<Delivery<{ key: string; seq: number }>, unknown>();
            for (const d of deliveries) {
              if (d.body.key === 'poison') failures.set(d, new Error('poison'));
              else if (d.body.key === 'k1' && d.body.seq === 4 && !failedOnce) {
                failedOnce = true;
                failures.set(d, new Error('once'));
              }
            }
            return failures as BatchFailures<{ key: string; seq: number }>;
          },
        ),
      );
      const spy = new Collector();
      const stopWatching = spy.watch(broker, topic);
      const handledEvents = recordEvents(broker, topic, ['handled']);
      try {
        const producer = broker.producer();
        const messages: { topic: string; key: string; body: { key: string; seq: number } }[] = [];
        for (let seq = 0; seq < 10; seq++)
          for (const key of ['k0', 'k1', 'k2']) messages.push({ topic, key, body: { key, seq } });
        messages.push({ topic, key: 'poison', body: { key: 'poison', seq: 0 } });
        const sent = await producer.sendBatch(messages);
        await spy.waitForDeadLetters(1, timeoutMs);
        for (const result of sent.slice(0, 30)) await spy.waitForOutcome(result.id, 'handled', timeoutMs);
        expect(spy.deadLettered).toEqual([sent[30]?.id]);
        for (const batch of batches) expect(batch.length).toBeLessThanOrEqual(8);
        // Each key's messages were handled (acknowledged) once, in the order they were sent.
        const byId = new Map(sent.map((r, i) => [r.id, messages[i]?.body]));
        for (const key of ['k0', 'k1', 'k2']) {
          const handled = handledEvents.seen
            .map((e) => byId.get((e.event as MqEvents['handled']).id))
            .filter((body) => body?.key === key)
            .map((body) => body?.seq);
          expect(handled).toEqual([...Array(10).keys()]);
        }
        // The failed one came back as attempt 2; k0 and k2 never came twice.
        const k14 = batches.flat().filter((d) => d.body.key === 'k1' && d.body.seq === 4);
        expect(k14.map((d) => d.attempt)).toEqual([1, 2]);
        for (const key of ['k0', 'k2']) {
          const seen = batches.flat().filter((d) => d.body.key === key);
          expect(seen.length).toBe(10);
        }
        // Messages of k1 after the failed one were handed over again with it, never before it.
        const k1 = batches
          .flat()
          .filter((d) => d.body.key === 'k1')
          .map((d) => d.body.seq);
        const retriedAt = k1.lastIndexOf(4);
        expect(k1.slice(retriedAt)).toEqual(k1.slice(retriedAt).sort((a, b) => a - b));
      } finally {
        stopWatching();
        handledEvents.stop();
      }
    },
    testTimeout,
  );

  it(
    'pull consumption: for await hands out deliveries in order; fail() retries; leaving the loop redelivers the one in hand',
    async () => {
      const broker = ctx.broker();
      const topic = await ctx.topicWith(1);
      const group = ctx.group('pull');
      const options: SubscribeOptions<number> = {
        topic,
        group,
        order: 'key',
        retry: { attempts: 3, backoff: { initialMs: 10, maxMs: 20 } },
      };
      const first = broker.consume<number>(options);
      await first.ready;
      const producer = broker.producer();
      for (let i = 0; i < 5; i++) await producer.send({ topic, key: 'k', body: i });
      const seen: string[] = [];
      for await (const d of first) {
        seen.push(`${d.body}@${d.attempt}`);
        if (d.body === 2 && d.attempt === 1) {
          first.fail(d, new Error('try again'));
          continue;
        }
        if (d.body === 3) break; // leaves with 3 in hand: not handled
      }
      expect(seen).toEqual(['0@1', '1@1', '2@1', '2@2', '3@1']);
      const second = broker.consume<number>(options);
      const again: number[] = [];
      for await (const d of second) {
        again.push(d.body);
        if (d.body === 4) break;
      }
      await second.close();
      // 4 was in hand when the loop left: only what came before it counts as handled.
      expect(again).toEqual([3, 4]);
      expect(() => first.fail({} as Delivery<number>, new Error('late'))).toThrow();
    },
    testTimeout,
  );

  it(
    'a pull loop ends when its broker connection closes',
    async () => {
      const own = await ctx.connect();
      const topic = await ctx.topicWith(1);
      await own.ensureTopic(topic);
      const stream = own.consume({ topic, group: ctx.group('pull-close') });
      await stream.ready;
      const looped = (async () => {
        let count = 0;
        for await (const _ of stream) count++;
        return count;
      })();
      await own.close();
      expect(await looped).toBe(0);
    },
    testTimeout,
  );

  it(
    'pause holds new handlers until resume; setConcurrency changes parallelism while running',
    async () => {
      const broker = ctx.broker();
      const topic = await ctx.topicWith(1);
      const release = gate();
      let running = 0;
      let peak = 0;
      const started: number[] = [];
      const done = new Collector<number>();
      const subscription = ctx.track(
        await broker.subscribe<number>(
          { topic, group: ctx.group('pause'), order: 'concurrent', concurrency: 1 },
          done.handler(async (d) => {
            started.push(d.body);
            peak = Math.max(peak, ++running);
            await release.promise;
            running--;
          }),
        ),
      );
      expect(subscription.concurrency).toBe(1);
      const producer = broker.producer();
      for (let i = 0; i < 4; i++) await producer.send({ topic, body: i });
      await waitFor(() => started.length === 1, { timeoutMs, message: () => `started ${started}` });
      subscription.setConcurrency(3);
      expect(subscription.concurrency).toBe(3);
      await waitFor(() => started.length === 3, { timeoutMs, message: () => `started ${started}` });
      expect(() => subscription.setConcurrency(0)).toThrow(RangeError);
      subscription.pause();
      expect(subscription.paused).toBe(true);
      release.open();
      await done.waitForCount(3, timeoutMs);
      // Paused: the fourth message is in hand but no handler starts. A second group on the same
      // topic getting a later message shows the first group had every chance to start it.
      const witness = new Collector<number>();
      ctx.track(await broker.subscribe<number>({ topic, group: ctx.group('witness') }, witness.handler()));
      await producer.send({ topic, body: 4 });
      await waitFor(() => witness.bodies.includes(4), {
        timeoutMs,
        message: 'the witness group got nothing',
      });
      expect(started).toHaveLength(3);
      subscription.resume();
      await done.waitForCount(5, timeoutMs);
      expect(peak).toBe(3);
    },
    testTimeout,
  );

  it(
    'a second close waits for the first, which waits for the handler in flight',
    async () => {
      const broker = ctx.broker();
      const topic = await ctx.topicWith(1);
      const release = gate();
      const order: string[] = [];
      const started = new Collector();
      const subscription = await broker.subscribe({ topic, group: ctx.group('close-twice') }, async (d) => {
        started.deliveries.push(d);
        await release.promise;
        order.push('handler finished');
      });
      await broker.producer().send({ topic, body: 1 });
      await waitFor(() => started.deliveries.length === 1, { timeoutMs });
      const first = subscription.close({ timeoutMs: testTimeout });
      const second = subscription.close();
      void first.then(() => order.push('first close'));
      void second.then(() => order.push('second close'));
      await new Promise((resolve) => setImmediate(resolve));
      release.open();
      await Promise.all([first, second]);
      expect(order).toEqual(['handler finished', 'first close', 'second close']);
    },
    testTimeout,
  );

  it(
    'closing the connection while a subscribe is in flight settles it: subscribed and closed, or ClosedError',
    async () => {
      const own = await ctx.connect();
      const topic = await ctx.topicWith(1);
      let outcome = 'pending';
      const subscribing = own
        .subscribe({ topic, group: ctx.group('racing') }, () => {})
        .then(
          () => {
            outcome = 'done';
          },
          (error: unknown) => {
            outcome = isMqError(error) ? error.code : String(error);
          },
        );
      await own.close();
      await subscribing;
      expect(outcome).toMatch(/^(done|CLOSED)$/);
      await expect(own.subscribe({ topic, group: ctx.group('after') }, () => {})).rejects.toMatchObject({
        code: 'CLOSED',
      });
    },
    testTimeout,
  );
}
