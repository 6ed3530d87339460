import { describe, expect, inject, it } from 'vitest';
import { type Broker, connect, type Delivery, type Subscription } from '../../src/index.js';
import {
  BacklogMonitor,
  expand,
  overflow,
  scaleConcurrency,
  shaveProducer,
} from '../../src/patterns/index.js';
import { uniqueName, waitFor } from '../../src/testing/index.js';
import { type CheckedSample, checkedAdmin, Tally } from './backlog-tally.js';

// The rebalance strategies on each broker: a slow consumer builds a backlog that drains to
// zero with nothing lost and no key out of order, while every sample of the reported backlog
// stays within the broker's stated error of the test's own count (sent minus handled).
// 2,000 messages keep the run short; `npm run bench -- backlog` drains 50,000.

const brokers = [
  ['memory', () => `memory://${uniqueName('strategies')}`],
  ['rabbitmq', () => inject('amqpUrl')],
  ['kafka', () => inject('kafkaUrl')],
] as const;

const MESSAGES = 2000;
const KEYS = 40;
const PARTITIONS = 4;
const MAX_CONCURRENCY = 16;
/** RabbitMQ: deliveries its consumers may hold unacknowledged, per queue max(2 x concurrency, 64). */
const HELD_MAX = PARTITIONS * Math.max(2 * MAX_CONCURRENCY, 64);

/** Message j: key j mod KEYS, seq j div KEYS (each key's seq counts up from 0 in send order). */
const message = (topic: string, j: number) => ({
  topic,
  key: `key-${j % KEYS}`,
  body: { seq: Math.floor(j / KEYS) },
});

interface Setup {
  broker: Broker;
  topic: string;
  group: string;
  tally: Tally;
  samples: CheckedSample[];
  monitor: BacklogMonitor;
  sub: Subscription;
  outside: () => CheckedSample[];
}

/** A topic, a slow key-ordered consumer at concurrency 1 counted by a Tally, and a monitor checking every sample. */
async function setup(url: string, concurrency = 1): Promise<Setup> {
  const broker = await connect(url);
  const topic = uniqueName('drain');
  const group = uniqueName('g');
  await broker.ensureTopic(topic, { partitions: PARTITIONS });
  const tally = new Tally(broker, topic, group);
  const sub = await broker.subscribe(
    { topic, group, order: 'key', concurrency },
    async (d: Delivery<{ seq: number }>) => {
      await new Promise((resolve) => setTimeout(resolve, 2)); // slow: a 2 ms call per message
      tally.handle(d);
    },
  );
  const samples: CheckedSample[] = [];
  const admin = checkedAdmin(broker, tally, samples, HELD_MAX);
  const monitor = new BacklogMonitor(admin, { topic, group, intervalMs: 200, window: 5 });
  return { broker, topic, group, tally, samples, monitor, sub, outside: admin.outside };
}

/** Sends the messages in batches of 50, counting each as started before and sent after. */
async function produce(
  send: (batch: ReturnType<typeof message>[]) => Promise<unknown>,
  s: Setup,
): Promise<void> {
  for (let j = 0; j < MESSAGES; j += 50) {
    const batch = Array.from({ length: Math.min(50, MESSAGES - j) }, (_, i) => message(s.topic, j + i));
    s.tally.sendStarted += batch.length;
    await send(batch);
    s.tally.sendDone += batch.length;
  }
}

async function drained(s: Setup): Promise<void> {
  await waitFor(() => s.tally.handled === MESSAGES, {
    timeoutMs: 240_000,
    message: () => `handled ${s.tally.handled} of ${MESSAGES}`,
  });
  await waitFor(async () => (await s.monitor.sample()).total === 0, { timeoutMs: 60_000 });
  expect(s.tally.handled).toBe(MESSAGES); // 0 lost
  expect(s.tally.violations).toBe(0); // 0 per-key order violations
  expect(s.outside()).toEqual([]);
  expect(s.samples.length).toBeGreaterThan(3);
}

describe.each(brokers)('backlog strategies on %s', { timeout: 300_000 }, (_kind, url) => {
  it('concurrency: raised between bounds while the backlog builds, lowered when drained', async () => {
    const s = await setup(url());
    try {
      const seen: number[] = [];
      const strategy = scaleConcurrency(s.sub, s.monitor, {
        min: 1,
        max: MAX_CONCURRENCY,
        onChange: ({ to }) => seen.push(to),
      });
      s.monitor.start();
      const producer = s.broker.producer();
      await produce((batch) => producer.sendBatch(batch), s);
      await drained(s);
      expect(Math.max(...seen)).toBeGreaterThan(1);
      expect(seen.every((c) => c >= 1 && c <= MAX_CONCURRENCY)).toBe(true);
      // Drained: it comes back down to the minimum.
      await waitFor(() => s.sub.concurrency === 1, { timeoutMs: 60_000 });
      strategy.stop();
    } finally {
      await s.monitor.stop();
      await s.broker.close();
    }
  });

  it('peak shaving: sends wait above the high-water mark, so the backlog stays under it', async () => {
    const s = await setup(url(), 4);
    try {
      const highWater = 300;
      s.monitor.start();
      await waitFor(() => s.monitor.latest !== undefined);
      const producer = shaveProducer(s.broker.producer(), s.monitor, { highWater, lowWater: 100 });
      let shaved = false;
      await produce(async (batch) => {
        shaved ||= producer.shaving;
        await producer.sendBatch(batch);
      }, s);
      await drained(s);
      expect(shaved).toBe(true);
      // Below the mark before each batch; a batch (50) may cross it. One producer: no overshoot beyond.
      expect(Math.max(...s.samples.map((x) => x.reported))).toBeLessThan(highWater + 50);
      await producer.close();
    } finally {
      await s.monitor.stop();
      await s.broker.close();
    }
  });

  it('overflow: forwards the backlog to a wider topic worked by more subscriptions, keeps per-key order across both switches', async () => {
    const broker = await connect(url());
    const topic = uniqueName('hot');
    const group = uniqueName('g');
    await broker.ensureTopic(topic, { partitions: 2 });
    const tally = new Tally(broker, topic, group);
    const samples: CheckedSample[] = [];
    const admin = checkedAdmin(broker, tally, samples, HELD_MAX);
    const monitor = new BacklogMonitor(admin, { topic, group, intervalMs: 200, window: 5 });
    const switches: string[] = [];
    const handledOn = new Map<string, number>();
    const consumer = await overflow(
      broker,
      monitor,
      {
        partitions: 8,
        workers: 3,
        concurrency: 2,
        highWater: 300,
        lowWater: 50,
        onSwitch: (to) => switches.push(to),
      },
      async (d: Delivery<{ seq: number }>) => {
        await new Promise((resolve) => setTimeout(resolve, 2));
        handledOn.set(d.topic, (handledOn.get(d.topic) ?? 0) + 1);
        tally.handle(d);
      },
    );
    try {
      monitor.start();
      const producer = broker.producer();
      const send = async (from: number, to: number) => {
        for (let j = from; j < to; j += 50) {
          const batch = Array.from({ length: Math.min(50, to - j) }, (_, i) => message(topic, j + i));
          tally.sendStarted += batch.length;
          await producer.sendBatch(batch);
          tally.sendDone += batch.length;
        }
      };
      // A burst builds the backlog; a trickle, one batch per monitor sample, goes on across
      // the switch to forwarding and back, until 5 batches after the switch back.
      await send(0, MESSAGES);
      let sent = MESSAGES;
      let after = 0;
      while (after < 5) {
        await send(sent, sent + 20);
        sent += 20;
        if (switches.includes('direct')) after++;
        const at = monitor.latest?.at;
        await waitFor(() => monitor.latest?.at !== at, { timeoutMs: 30_000 });
        expect(sent).toBeLessThan(MESSAGES + 20 * 1000); // the switch back happened
      }
      await waitFor(() => tally.handled === sent, {
        timeoutMs: 240_000,
        message: () =>
          `handled ${tally.handled} of ${sent}; ${consumer.mode}, ${consumer.outstanding} outstanding`,
      });
      expect(switches.slice(0, 2)).toEqual(['forward', 'direct']);
      expect(consumer.forwarded).toBeGreaterThan(0);
      expect(handledOn.get(consumer.overflowTopic)).toBeGreaterThan(0); // the workers handled the forwarded ones
      expect(handledOn.get(topic)).toBeGreaterThan(0); // and the topic's subscription the rest
      expect(tally.violations).toBe(0);
      expect(tally.handled).toBe(sent);
      await producer.close();
    } finally {
      await monitor.stop();
      await consumer.close();
      await broker.close();
    }
  });

  it('expand: drains, doubles the partitions, restarts more subscriptions, keeps per-key order across the change', async () => {
    const broker = await connect(url());
    const topic = uniqueName('expand');
    const group = uniqueName('g');
    await broker.ensureTopic(topic, { partitions: 2 });
    const tally = new Tally(broker, topic, group);
    const monitor = new BacklogMonitor(broker, { topic, group, intervalMs: 200, window: 5 });
    const changes: { from: number; to: number; workers: number }[] = [];
    const errors: unknown[] = [];
    const consumer = await expand(
      broker,
      monitor,
      {
        maxPartitions: 8,
        highWater: 300,
        partitionsPerWorker: 2,
        concurrency: 2,
        onExpand: (c) => changes.push(c),
        onError: (e) => errors.push(e),
      },
      async (d: Delivery<{ seq: number }>) => {
        // Slower than one prefetch per sample: when the count of ready messages reaches zero,
        // the consumers still hold deliveries they fetched ahead (RabbitMQ), which must be
        // handled before the keys move.
        await new Promise((resolve) => setTimeout(resolve, 15));
        tally.handle(d);
      },
    );
    try {
      expect(consumer.partitions).toBe(2);
      monitor.start();
      const send = async (from: number, to: number) => {
        for (let j = from; j < to; j += 50) {
          const batch = Array.from({ length: Math.min(50, to - j) }, (_, i) => message(topic, j + i));
          tally.sendStarted += batch.length;
          await consumer.producer.sendBatch(batch);
          tally.sendDone += batch.length;
        }
      };
      // The first half builds the backlog; the second half is sent once the expansion was
      // decided, so it is held until the partitions are raised and lands at the new count.
      await send(0, MESSAGES / 2);
      await waitFor(() => consumer.expanding || changes.length > 0, { timeoutMs: 60_000 });
      await send(MESSAGES / 2, MESSAGES);
      expect(changes.length).toBeGreaterThan(0); // held until the expansion was done
      await waitFor(() => tally.handled === MESSAGES, {
        timeoutMs: 240_000,
        message: () =>
          `handled ${tally.handled} of ${MESSAGES}; ${consumer.partitions} partitions, expanding ${consumer.expanding}`,
      });
      expect(errors).toEqual([]);
      expect(changes.length).toBeGreaterThan(0);
      expect(changes[0]).toEqual({ from: 2, to: 4, workers: 2 });
      expect(consumer.partitions).toBeGreaterThan(2);
      expect(tally.handled).toBe(MESSAGES);
      expect(tally.violations).toBe(0);
      // The messages after an expansion used the new partitions.
      const backlog = await broker.backlog(topic, group);
      expect(backlog.partitions).toHaveLength(consumer.partitions);
    } finally {
      await monitor.stop();
      await consumer.close();
      await broker.close();
    }
  });

  it('composed: peak shaving and concurrency together', async () => {
    const s = await setup(url());
    try {
      const seen: number[] = [];
      scaleConcurrency(s.sub, s.monitor, { max: MAX_CONCURRENCY, onChange: ({ to }) => seen.push(to) });
      s.monitor.start();
      await waitFor(() => s.monitor.latest !== undefined);
      const producer = shaveProducer(s.broker.producer(), s.monitor, { highWater: 400 });
      await produce((batch) => producer.sendBatch(batch), s);
      await drained(s);
      expect(Math.max(...seen)).toBeGreaterThan(1);
      expect(Math.max(...s.samples.map((x) => x.reported))).toBeLessThan(400 + 50);
      await producer.close();
    } finally {
      await s.monitor.stop();
      await s.broker.close();
    }
  });
});
