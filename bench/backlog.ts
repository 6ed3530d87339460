import { parseArgs } from 'node:util';
import { connect, type Delivery, type Subscription } from '../src/index.js';
import {
  BacklogMonitor,
  type ExpandConsumer,
  expand,
  overflow,
  scaleConcurrency,
  shaveProducer,
} from '../src/patterns/index.js';

/**
 * Drain time of a backlog with no strategy and with each rebalance strategy:
 *   npm run bench -- backlog --url <url> [--messages 50000] [--runs 1]
 * A producer sends `messages` (200 keys, 8 partitions) as fast as it can to a slow consumer
 * (order 'key', each handler waits 1 ms, as a call to another service would); the drain time
 * runs from the first send until every message was handled. Strategies:
 *   none        concurrency 8, fixed
 *   concurrency scaleConcurrency 8..128 (doubling while the backlog does not shrink)
 *   shaving     concurrency 8, producer held above 5,000 behind, released at 2,500
 *   both        the two together
 *   overflow    above 5,000 behind, forward to a 32-partition topic worked by 4 more
 *               subscriptions (concurrency 8 each); back once drained
 *   expand      above 5,000 behind, hold sends, drain, double the partitions (up to 32),
 *               one subscription (concurrency 8) per 8 partitions
 * Per run it prints the drain time, the throughput, the largest backlog the monitor sampled
 * (every 250 ms), the largest concurrency, and the checks: lost and per-key order violations.
 * A run gives up after --idle-timeout seconds (default 60) without a message handled: `lost`
 * then counts what never arrived.
 *
 *   npm run bench -- backlog --url <url> --overflow [--messages 3000] [--runs 1]
 * Throughput beyond the partition count: a 2-partition topic, order 'partition' (one message
 * at a time per partition), a 5 ms handler; 1, 2, 4 and 8 consumers of the group without a
 * strategy (at most 2 work), then the overflow strategy forwarding to a 16-partition topic
 * with 1, 2, 4 and 8 workers (concurrency 2 each) in this process.
 */
const { values } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== 'backlog'),
  options: {
    url: { type: 'string' },
    messages: { type: 'string' },
    runs: { type: 'string' },
    only: { type: 'string' },
    overflow: { type: 'boolean' },
    'idle-timeout': { type: 'string' },
  },
});
const url = values.url ?? process.env.MQ_URL ?? 'memory://';
const messages = Number(values.messages ?? (values.overflow ? 3000 : 50_000));
const runs = Number(values.runs ?? 1);
const KEYS = 200;
const PARTITIONS = 8;
const BASE = 8;
const MAX = 128;
const HIGH = 5000;
/** A run gives up after this long without a message handled (see `settled`). */
const IDLE_MS = Number(values['idle-timeout'] ?? 60) * 1000;

type Strategy = 'none' | 'concurrency' | 'shaving' | 'both' | 'overflow' | 'expand';
const strategies: Strategy[] = (values.only?.split(',') as Strategy[] | undefined) ?? [
  'none',
  'concurrency',
  'shaving',
  'both',
  'overflow',
  'expand',
];

interface Result {
  strategy: Strategy;
  drainMs: number;
  peak: number;
  maxConcurrency: number;
  lost: number;
  violations: number;
}

async function once(strategy: Strategy): Promise<Result> {
  const stamp = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  const broker = await connect(url.startsWith('memory:') ? `memory://bench-${stamp}` : url);
  const topic = `bench-backlog-${stamp}`;
  const group = `bench-${stamp}`;
  await broker.ensureTopic(topic, { partitions: PARTITIONS });
  const last = new Map<string, number>();
  const seen = new Set<string>();
  let violations = 0;
  let done: () => void = () => {};
  const finished = new Promise<void>((resolve) => {
    done = resolve;
  });
  const handler = async (d: Delivery<{ seq: number }>) => {
    await new Promise((resolve) => setTimeout(resolve, 1));
    if (seen.has(d.id)) return;
    const key = d.key as string;
    if (d.body.seq !== (last.get(key) ?? -1) + 1) violations++;
    last.set(key, d.body.seq);
    seen.add(d.id);
    if (seen.size === messages) done();
  };
  const monitor = new BacklogMonitor(broker, { topic, group, intervalMs: 250, window: 8 });
  let close: () => Promise<void>;
  let sub: Subscription | undefined;
  let expanded: ExpandConsumer | undefined;
  if (strategy === 'overflow') {
    const hot = await overflow(
      broker,
      monitor,
      { partitions: 32, workers: 4, concurrency: BASE, highWater: HIGH },
      handler,
    );
    close = () => hot.close();
  } else if (strategy === 'expand') {
    const grown = await expand(
      broker,
      monitor,
      { maxPartitions: 32, highWater: HIGH, partitionsPerWorker: 8, concurrency: BASE },
      handler,
    );
    expanded = grown;
    close = () => grown.close();
  } else {
    const plain = await broker.subscribe({ topic, group, order: 'key', concurrency: BASE }, handler);
    sub = plain;
    close = () => plain.close();
  }
  let peak = 0;
  let maxConcurrency = BASE;
  monitor.on('sample', (r) => {
    peak = Math.max(peak, r.total);
  });
  if ((strategy === 'concurrency' || strategy === 'both') && sub !== undefined) {
    scaleConcurrency(sub, monitor, {
      min: BASE,
      max: MAX,
      onChange: ({ to }) => {
        maxConcurrency = Math.max(maxConcurrency, to);
      },
    });
  }
  monitor.start();
  await monitor.sample();
  const plain = expanded?.producer ?? broker.producer();
  const producer =
    strategy === 'shaving' || strategy === 'both'
      ? shaveProducer(plain, monitor, { highWater: HIGH, lowWater: HIGH / 2, maxWaitMs: 600_000 })
      : plain;
  const started = performance.now();
  for (let j = 0; j < messages; j += 500) {
    await producer.sendBatch(
      Array.from({ length: Math.min(500, messages - j) }, (_, i) => {
        const n = j + i;
        return { topic, key: `key-${n % KEYS}`, body: { seq: Math.floor(n / KEYS) } };
      }),
    );
  }
  await settled(finished, () => seen.size);
  const drainMs = performance.now() - started;
  await monitor.stop();
  await close();
  if (expanded === undefined) await producer.close();
  await broker.close();
  return { strategy, drainMs, peak, maxConcurrency, lost: messages - seen.size, violations };
}

const pad = (s: string | number, n: number) => String(s).padStart(n);

/**
 * Waits for `finished`, or gives up once `handled()` has not grown for `IDLE_MS` (a message
 * lost would otherwise keep the run waiting forever; `lost` then prints what is missing).
 */
async function settled(finished: Promise<void>, handled: () => number): Promise<void> {
  let last = -1;
  let since = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const idle = new Promise<void>((resolve) => {
    const check = () => {
      const now = handled();
      if (now !== last) {
        last = now;
        since = performance.now();
      } else if (performance.now() - since >= IDLE_MS) {
        console.error(`gave up: no message handled for ${IDLE_MS / 1000} s (${now} of ${messages})`);
        return resolve();
      }
      timer = setTimeout(check, 1000);
    };
    check();
  });
  await Promise.race([finished, idle]);
  clearTimeout(timer);
}

/** Overflow figures: consumers (or overflow workers) on a 2-partition topic, order 'partition'. */
async function wide(mode: 'consumers' | 'overflow', count: number) {
  const stamp = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  const broker = await connect(url.startsWith('memory:') ? `memory://bench-${stamp}` : url);
  const topic = `bench-hot-${stamp}`;
  const group = `bench-${stamp}`;
  await broker.ensureTopic(topic, { partitions: 2 });
  const last = new Map<string, number>();
  const seen = new Set<string>();
  let violations = 0;
  let done: () => void = () => {};
  const finished = new Promise<void>((resolve) => {
    done = resolve;
  });
  const handler = async (d: Delivery<{ seq: number }>) => {
    await new Promise((resolve) => setTimeout(resolve, 5));
    if (seen.has(d.id)) return;
    const key = d.key as string;
    if (d.body.seq !== (last.get(key) ?? -1) + 1) violations++;
    last.set(key, d.body.seq);
    seen.add(d.id);
    if (seen.size === messages) done();
  };
  const monitor = new BacklogMonitor(broker, { topic, group, intervalMs: 250 });
  const closers: (() => Promise<void>)[] = [];
  if (mode === 'consumers') {
    for (let i = 0; i < count; i++) {
      const sub = await broker.subscribe({ topic, group, order: 'partition', concurrency: 2 }, handler);
      closers.push(() => sub.close());
    }
  } else {
    const consumer = await overflow(
      broker,
      monitor,
      { partitions: 16, workers: count, concurrency: 2, order: 'partition', highWater: 200, lowWater: 20 },
      handler,
    );
    closers.push(() => consumer.close());
  }
  monitor.start();
  const producer = broker.producer();
  const started = performance.now();
  for (let j = 0; j < messages; j += 500) {
    await producer.sendBatch(
      Array.from({ length: Math.min(500, messages - j) }, (_, i) => {
        const n = j + i;
        return { topic, key: `key-${n % KEYS}`, body: { seq: Math.floor(n / KEYS) } };
      }),
    );
  }
  await settled(finished, () => seen.size);
  const ms = performance.now() - started;
  await monitor.stop();
  for (const close of closers) await close();
  await producer.close();
  await broker.close();
  return { ms, lost: messages - seen.size, violations };
}

if (values.overflow) {
  console.log(
    `overflow: ${url.replace(/\/\/[^@/]*@/, '//***@')}  ${messages} messages, ${KEYS} keys, 2 partitions, order partition, handler 5 ms`,
  );
  console.log(
    `${'setup'.padEnd(28)}${pad('drain ms', 10)}${pad('msg/s', 9)}${pad('lost', 6)}${pad('order viol', 12)}`,
  );
  for (let run = 0; run < runs; run++) {
    for (const mode of ['consumers', 'overflow'] as const) {
      for (const count of [1, 2, 4, 8]) {
        const r = await wide(mode, count);
        const label =
          mode === 'consumers' ? `${count} consumer(s), no strategy` : `overflow, ${count} worker(s)`;
        console.log(
          `${label.padEnd(28)}${pad(r.ms.toFixed(0), 10)}${pad(((messages / r.ms) * 1000).toFixed(0), 9)}${pad(r.lost, 6)}${pad(r.violations, 12)}`,
        );
      }
    }
  }
  process.exit(0);
}

console.log(
  `backlog drain: ${url.replace(/\/\/[^@/]*@/, '//***@')}  ${messages} messages, ${KEYS} keys, ${PARTITIONS} partitions, handler 1 ms, order key`,
);
console.log(
  `${'strategy'.padEnd(12)}${pad('drain ms', 10)}${pad('msg/s', 9)}${pad('peak backlog', 14)}${pad('max conc', 10)}${pad('lost', 6)}${pad('order viol', 12)}`,
);
for (let run = 0; run < runs; run++) {
  for (const strategy of strategies) {
    const r = await once(strategy);
    console.log(
      `${r.strategy.padEnd(12)}${pad(r.drainMs.toFixed(0), 10)}${pad(((messages / r.drainMs) * 1000).toFixed(0), 9)}${pad(r.peak, 14)}${pad(r.maxConcurrency, 10)}${pad(r.lost, 6)}${pad(r.violations, 12)}`,
    );
  }
}
