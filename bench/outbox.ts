import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import amqp from 'amqplib';
import pg from 'pg';
import { type Broker, connect } from '../src/index.js';
import { createOutbox, ensureOutbox, type OutboxRelay, startOutboxRelay } from '../src/patterns/index.js';

/**
 * Outbox relay figures: `npm run bench -- outbox [--rows 20000] [--brokers memory,kafka,rabbitmq]
 * [--rate 1000] [--seconds 5] [--order-rows 10000] [--pg URL] [--kafka URL] [--amqp URL]`.
 *
 * Throughput: 1 or 3 relays start and divide the key slots; `--rows` rows (default 20 000)
 * over 100 keys are written in one transaction; rows/s from its COMMIT to the last row
 * acknowledged (acks all) and deleted. Latency: `--rate` rows/s are committed for `--seconds` (10 rows per transaction)
 * while one relay runs, with LISTEN/NOTIFY and with polling alone (pollMs 1000); the time from
 * COMMIT returning to the consumer receiving the message, p50 and p99. Order check: 3 relays
 * drain `--order-rows` (default 10 000) rows over 100 keys written while they run; the consumer
 * counts per-key order violations.
 */
const { values } = parseArgs({
  args: process.argv.slice(3),
  options: {
    rows: { type: 'string' },
    brokers: { type: 'string' },
    rate: { type: 'string' },
    seconds: { type: 'string' },
    'order-rows': { type: 'string' },
    pg: { type: 'string' },
    kafka: { type: 'string' },
    amqp: { type: 'string' },
  },
});
const rows = Number(values.rows ?? 20_000);
const rate = Number(values.rate ?? 1000);
const seconds = Number(values.seconds ?? 5);
const orderRows = Number(values['order-rows'] ?? 10_000);
const urls: Record<string, string> = {
  memory: 'memory://outbox-bench',
  kafka: values.kafka ?? process.env.MQKIT_TEST_KAFKA_URL ?? 'kafka://127.0.0.1:9092',
  amqp: values.amqp ?? process.env.MQKIT_TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672',
};
urls.rabbitmq = urls.amqp as string;
if (!/^kafka:/.test(urls.kafka as string)) urls.kafka = `kafka://${urls.kafka}`;
const kinds = (values.brokers ?? 'memory,kafka,rabbitmq').split(',');
const pool = new pg.Pool({
  connectionString:
    values.pg ?? process.env.MQKIT_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
  max: 20,
});
const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const keys = 100;
const body = { order: 'o-000000', amount: 1234, items: ['sku-1', 'sku-2'], note: 'x'.repeat(40) };

async function dropTable(table: string): Promise<void> {
  await pool.query(`DROP TABLE ${table}, ${table}_meta, ${table}_relays`);
  await pool.query(`DROP FUNCTION ${table}_notify()`);
}

function freshTable(): string {
  return `ob_bench_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 6)}`;
}

/** Writes `count` rows over 100 keys in one transaction, committed when `commit` is called. */
async function fill(table: string, topic: string, count: number): Promise<() => Promise<void>> {
  const outbox = createOutbox({ table });
  const tx = await pool.connect();
  await tx.query('BEGIN');
  const chunk = 1000;
  for (let i = 0; i < count; i += chunk) {
    await outbox.addBatch(
      tx,
      Array.from({ length: Math.min(chunk, count - i) }, (_, j) => ({
        topic,
        key: `k${(i + j) % keys}`,
        body,
      })),
    );
  }
  return async () => {
    await tx.query('COMMIT');
    tx.release();
  };
}

async function throughput(broker: Broker, relaysCount: number): Promise<string> {
  const table = freshTable();
  await ensureOutbox(pool, { table, slots: 64 });
  const topic = `ob-bench-${Date.now().toString(36)}`;
  await broker.ensureTopic(topic, { partitions: 6 });
  const producers = Array.from({ length: relaysCount }, () => broker.producer());
  const relays: OutboxRelay[] = await Promise.all(
    producers.map((producer) =>
      startOutboxRelay({ pool, producer, table, logger: quiet, rebalanceMs: 200, batchSize: 1000 }),
    ),
  );
  // The relays have divided the slots between them before the rows become visible.
  const share = Math.ceil(64 / relaysCount);
  const balanced = () =>
    relays.every((r) => r.slots.length > 0 && r.slots.length <= share) &&
    relays.reduce((sum, r) => sum + r.slots.length, 0) === 64;
  while (!balanced()) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const commit = await fill(table, topic, rows);
  let published = 0;
  let done: () => void = () => {};
  const finished = new Promise<void>((resolve) => {
    done = resolve;
  });
  for (const r of relays) {
    r.on('published', (e) => {
      published += e.count;
      if (published >= rows) done();
    });
  }
  const started = performance.now();
  await commit();
  await finished;
  const ms = performance.now() - started;
  await Promise.all(relays.map((r) => r.close()));
  await Promise.all(producers.map((p) => p.close()));
  await dropTable(table);
  if (broker.kind === 'rabbitmq') await dropHeld(topic);
  return `${broker.kind.padEnd(9)} relays ${relaysCount}  ${String(rows).padStart(6)} rows  ${(ms / 1000).toFixed(2).padStart(6)} s  ${Math.round(
    (rows / ms) * 1000,
  )
    .toString()
    .padStart(7)} rows/s`;
}

/**
 * The throughput topic has no group: RabbitMQ holds its messages in the topic's
 * `mq.unrouted:<topic>` queue (for groups created later). A bench leaves nothing behind.
 */
async function dropHeld(topic: string): Promise<void> {
  const connection = await amqp.connect(urls.rabbitmq as string);
  try {
    const channel = await connection.createChannel();
    await channel.deleteQueue(`mq.unrouted:${topic}`);
    await channel.close();
  } finally {
    await connection.close();
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? Number.NaN;
}

async function latency(broker: Broker, listen: boolean): Promise<string> {
  const table = freshTable();
  await ensureOutbox(pool, { table, slots: 64 });
  const outbox = createOutbox({ table });
  const topic = `ob-lat-${Date.now().toString(36)}`;
  await broker.ensureTopic(topic, { partitions: 6 });
  const committedAt = new Map<string, number>();
  const receivedAt = new Map<string, number>();
  const total = rate * seconds;
  let received = 0;
  const sub = await broker.subscribe(
    { topic, group: `g-${Date.now().toString(36)}`, concurrency: 32 },
    (d) => {
      // A delivery may beat the writer's COMMIT reply: keep both times, pair them at the end.
      if (!receivedAt.has(d.id)) receivedAt.set(d.id, performance.now());
      received++;
    },
  );
  const producer = broker.producer();
  const relay = await startOutboxRelay({ pool, producer, table, logger: quiet, listen, pollMs: 1000 });
  const perTx = 10;
  const interval = (1000 * perTx) / rate;
  const start = performance.now();
  const writes: Promise<void>[] = [];
  for (let n = 0; n < total / perTx; n++) {
    const due = start + n * interval;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    writes.push(
      (async () => {
        const tx = await pool.connect();
        try {
          await tx.query('BEGIN');
          const ids = await outbox.addBatch(
            tx,
            Array.from({ length: perTx }, (_, j) => ({ topic, key: `k${(n * perTx + j) % keys}`, body })),
          );
          await tx.query('COMMIT');
          const now = performance.now();
          for (const id of ids) committedAt.set(id, now);
        } finally {
          tx.release();
        }
      })(),
    );
  }
  await Promise.all(writes);
  while (received < total) await new Promise((resolve) => setTimeout(resolve, 20));
  const achieved = Math.round((total / (performance.now() - start)) * 1000);
  await relay.close();
  await producer.close();
  await sub.close();
  await dropTable(table);
  const latencies = [...committedAt].map(([id, at]) => Math.max(0, (receivedAt.get(id) ?? Number.NaN) - at));
  latencies.sort((a, b) => a - b);
  return `${broker.kind.padEnd(9)} ${listen ? 'NOTIFY ' : 'polling'}  ${total} rows at ${rate}/s (took ${achieved}/s)  commit-to-delivery p50 ${percentile(latencies, 50).toFixed(1)} ms  p99 ${percentile(latencies, 99).toFixed(1)} ms  (n=${latencies.length})`;
}

/**
 * The ordering run: 3 relays drain `orderRows` rows over 100 keys, written in
 * transactions of 100 rows while they run; a consumer (order 'key') counts rows whose per-key
 * sequence is not the next one.
 */
async function ordering(broker: Broker): Promise<string> {
  const table = freshTable();
  await ensureOutbox(pool, { table, slots: 64 });
  const outbox = createOutbox({ table });
  const topic = `ob-order-${Date.now().toString(36)}`;
  await broker.ensureTopic(topic, { partitions: 6 });
  const last = new Map<string, number>();
  const seen = new Set<string>();
  let violations = 0;
  let duplicates = 0;
  const sub = await broker.subscribe(
    { topic, group: `g-${Date.now().toString(36)}`, order: 'key', concurrency: 16 },
    (d) => {
      if (seen.has(d.id)) {
        duplicates++;
        return;
      }
      const seq = (d.body as { seq: number }).seq;
      if (seq !== (last.get(d.key as string) ?? -1) + 1) violations++;
      last.set(d.key as string, seq);
      seen.add(d.id);
    },
  );
  const producers = [broker.producer(), broker.producer(), broker.producer()];
  const relays = await Promise.all(
    producers.map((producer) => startOutboxRelay({ pool, producer, table, logger: quiet, rebalanceMs: 200 })),
  );
  const started = performance.now();
  const perKey = Math.ceil(orderRows / keys);
  for (let seq = 0; seq < perKey; seq++) {
    const tx = await pool.connect();
    try {
      await tx.query('BEGIN');
      await outbox.addBatch(
        tx,
        Array.from({ length: keys }, (_, k) => ({ topic, key: `k${k}`, body: { seq } })),
      );
      await tx.query('COMMIT');
    } finally {
      tx.release();
    }
  }
  const total = perKey * keys;
  while (seen.size < total) await new Promise((resolve) => setTimeout(resolve, 20));
  const ms = performance.now() - started;
  const shares = relays.map((r) => r.slots.length).join('/');
  await Promise.all(relays.map((r) => r.close()));
  await Promise.all(producers.map((p) => p.close()));
  await sub.close();
  await dropTable(table);
  return `${broker.kind.padEnd(9)} order check: ${total} rows over ${keys} keys, 3 relays (slots ${shares} at the end): delivered ${seen.size}, duplicates ${duplicates}, per-key order violations ${violations} (${(ms / 1000).toFixed(2)} s)`;
}

const out: string[] = [];
for (const kind of kinds) {
  const url = urls[kind];
  if (url === undefined) throw new Error(`unknown broker ${kind}`);
  const broker = await connect(url);
  try {
    for (const n of [1, 3]) out.push(await throughput(broker, n));
    for (const listen of [true, false]) out.push(await latency(broker, listen));
    out.push(await ordering(broker));
  } finally {
    await broker.close();
  }
  process.stdout.write(`${out.splice(0).join('\n')}\n`);
}
await pool.end();
