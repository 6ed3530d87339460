import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runCli } from '../../src/cli/cli.js';
import { formatOutboxDemo, runOutboxDemo } from '../../src/cli/demo-outbox.js';
import { type Broker, connect, type Delivery } from '../../src/index.js';
import {
  createOutbox,
  ensureOutbox,
  type OutboxRelay,
  type OutboxRelayOptions,
  startOutboxRelay,
} from '../../src/patterns/index.js';
import { Collector, uniqueName, waitFor } from '../../src/testing/index.js';
import {
  dropOutboxTables,
  freshOutboxTable,
  inTransaction,
  pgSilencingProxy,
  quietLogger,
} from './outbox-helpers.js';
import { rawConnection } from './rabbitmq-helpers.js';

let pool: pg.Pool;

beforeAll(() => {
  pool = new pg.Pool({ connectionString: inject('pgUrl'), max: 12 });
});

/** Every relay a test started: closed here too, so a failed test does not hold the pool open. */
const started: OutboxRelay[] = [];

afterAll(async () => {
  await Promise.all(started.map((r) => r.close()));
  if (pool !== undefined) await dropOutboxTables(pool);
  await pool?.end();
});

async function relays(count: number, options: Omit<OutboxRelayOptions, 'pool'>): Promise<OutboxRelay[]> {
  const made = await Promise.all(
    Array.from({ length: count }, () =>
      startOutboxRelay({ pool, pollMs: 200, rebalanceMs: 200, logger: quietLogger, ...options }),
    ),
  );
  started.push(...made);
  return made;
}

const brokers = [
  ['memory', () => `memory://${uniqueName('outbox')}`],
  ['kafka', () => inject('kafkaUrl')],
  ['rabbitmq', () => inject('amqpUrl')],
] as const;

describe.each(brokers)('outbox on %s', (_kind, url) => {
  let broker: Broker;
  beforeAll(async () => {
    broker = await connect(url());
  });
  afterAll(async () => {
    await broker?.close();
  });

  it('publishes what committed, with the id fixed at add time and the traceparent, and nothing of a rolled-back transaction', async () => {
    const table = await freshOutboxTable(pool);
    const outbox = createOutbox({ table });
    const topic = uniqueName('ob-basic');
    await broker.ensureTopic(topic, { partitions: 1 });
    const seen = new Collector<{ n: number }>();
    const sub = await broker.subscribe({ topic, group: uniqueName('g') }, seen.handler());
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    let ids: string[] = [];
    await inTransaction(pool, async (tx) => {
      ids = [
        await outbox.add(tx, { topic, key: 'a', body: { n: 1 }, headers: { traceparent, x: 'y' } }),
        ...(await outbox.addBatch(tx, [
          { topic, key: 'a', body: { n: 2 }, id: 'fixed-id-2' },
          { topic, key: 'b', body: { n: 3 }, tag: 'T1' },
        ])),
      ];
    });
    expect(ids[1]).toBe('fixed-id-2');
    let rolledBack = '';
    await inTransaction(
      pool,
      async (tx) => {
        rolledBack = await outbox.add(tx, { topic, key: 'a', body: { n: 99 } });
      },
      'ROLLBACK',
    );
    const [relay] = await relays(1, { table, producer: broker.producer() });
    await seen.waitForIds(3);
    // A fence written after the rolled-back transaction: once it is delivered, a row of that
    // transaction would have been too (same key, earlier).
    let fence = '';
    await inTransaction(pool, async (tx) => {
      fence = await outbox.add(tx, { topic, key: 'a', body: { n: 4 } });
    });
    await waitFor(() => seen.ids.has(fence));
    await relay?.close();
    await sub.close();
    expect(seen.ids.has(rolledBack)).toBe(false);
    // Per key, in insertion order (keys are handled in parallel).
    const ofKey = (k: string) => seen.deliveries.filter((d) => d.key === k).map((d) => d.id);
    expect(ofKey('a')).toEqual([ids[0], ids[1], fence]);
    expect(ofKey('b')).toEqual([ids[2]]);
    const first = seen.deliveries.find((d) => d.id === ids[0]) as Delivery<{ n: number }>;
    expect(first.headers).toEqual({ traceparent, x: 'y' });
    expect(first.body).toEqual({ n: 1 });
    expect(seen.deliveries.find((d) => d.id === ids[2])?.tag).toBe('T1');
    const left = await pool.query(`SELECT count(*)::int AS n FROM ${table}`);
    expect(left.rows[0].n).toBe(0); // published rows are deleted by default
  });

  it('three relays drain 2,000 rows over 100 keys written concurrently: every row once, 0 per-key order violations', async () => {
    const table = await freshOutboxTable(pool, 16);
    const outbox = createOutbox({ table });
    const topic = uniqueName('ob-order');
    await broker.ensureTopic(topic, { partitions: 4 });
    const last = new Map<string, number>();
    const seen = new Set<string>();
    let violations = 0;
    const sub = await broker.subscribe(
      { topic, group: uniqueName('g'), order: 'key', concurrency: 16 },
      (d: Delivery<{ seq: number }>) => {
        if (seen.has(d.id)) return;
        if (d.body.seq !== (last.get(d.key as string) ?? -1) + 1) violations++;
        last.set(d.key as string, d.body.seq);
        seen.add(d.id);
      },
    );
    const running = await relays(3, { table, producer: broker.producer(), batchSize: 100 });
    const slotChanges: number[][] = [];
    for (const r of running) r.on('slots', (e) => slotChanges.push([...e.owned]));
    const keys = 100;
    const perKey = 20;
    // 20 rounds, each one transaction per group of 10 keys, committed while the relays run.
    for (let seq = 0; seq < perKey; seq++) {
      await Promise.all(
        Array.from({ length: 10 }, (_, g) =>
          inTransaction(pool, async (tx) => {
            await outbox.addBatch(
              tx,
              Array.from({ length: keys / 10 }, (_, i) => ({ topic, key: `k${g * 10 + i}`, body: { seq } })),
            );
          }),
        ),
      );
    }
    await waitFor(() => seen.size === keys * perKey, {
      timeoutMs: 120_000,
      message: () => `received ${seen.size} of ${keys * perKey} (${violations} violations)`,
    });
    // The relays share the slots: each comes to hold some.
    await waitFor(() => running.every((r) => r.slots.length > 0));
    const owned = running.map((r) => r.slots.length);
    await Promise.all(running.map((r) => r.close()));
    await sub.close();
    expect(violations).toBe(0);
    expect([...last.values()].every((s) => s === perKey - 1)).toBe(true);
    expect(owned.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(16);
  }, 180_000);
});

describe('outbox on memory: commit order', () => {
  it('does not publish a row while an older transaction that wrote the same key is still open, then keeps their order', async () => {
    const broker = await connect(`memory://${uniqueName('late')}`);
    const table = await freshOutboxTable(pool);
    const outbox = createOutbox({ table });
    const topic = uniqueName('ob-late');
    const seen = new Collector<{ n: number }>();
    const sub = await broker.subscribe({ topic, group: 'g' }, seen.handler());
    const [relay] = await relays(1, { table, producer: broker.producer(), pollMs: 20 });
    // A takes its transaction id and the lower seq first; B writes after it and commits first.
    const a = await pool.connect();
    const b = await pool.connect();
    try {
      await a.query('BEGIN');
      const idA = await outbox.add(a, { topic, key: 'k', body: { n: 1 } });
      await b.query('BEGIN');
      const idB = await outbox.add(b, { topic, key: 'k', body: { n: 2 } });
      await b.query('COMMIT');
      // The relay looks twice after B committed and finds nothing it may publish yet.
      let polls = 0;
      const stop = relay?.on('polled', () => {
        polls++;
      });
      await waitFor(() => polls >= 3);
      stop?.();
      expect(seen.deliveries.length).toBe(0);
      await a.query('COMMIT');
      await seen.waitForIds(2);
      expect(seen.deliveries.map((d) => d.id)).toEqual([idA, idB]);
    } finally {
      a.release();
      b.release();
      await relay?.close();
      await sub.close();
      await broker.close();
    }
  });
});

describe('outbox on rabbitmq: a failing row', () => {
  it('is retried with back-off, holds back its key, is parked with its error, listed, and published once re-queued', async () => {
    // holdUnroutedMs 0: a message no queue takes is refused (not retriable), a real failure.
    const broker = await connect(inject('amqpUrl'), { rabbitmq: { holdUnroutedMs: 0 } });
    const table = await freshOutboxTable(pool);
    const outbox = createOutbox({ table });
    const nowhere = uniqueName('ob-nowhere');
    const topic = uniqueName('ob-ok');
    const seen = new Collector<{ n: number }>();
    const sub = await broker.subscribe({ topic, group: 'g' }, seen.handler());
    let stuck = '';
    await inTransaction(pool, async (tx) => {
      stuck = await outbox.add(tx, { topic: nowhere, key: 'k', body: { n: 1 } });
    });
    const [relay] = await relays(1, {
      table,
      producer: broker.producer(),
      maxAttempts: 3,
      backoff: { initialMs: 100, maxMs: 200 },
    });
    const failures: { attempts: number; parked: boolean }[] = [];
    relay?.on('failed', (e) => failures.push({ attempts: e.attempts, parked: e.parked }));
    await waitFor(() => failures.length > 0);
    // Written after the first failure: the row behind the failing one waits until it is parked;
    // the other key goes at once.
    let after = '';
    let other = '';
    await inTransaction(pool, async (tx) => {
      [after = '', other = ''] = await outbox.addBatch(tx, [
        { topic, key: 'k', body: { n: 2 } },
        { topic, key: 'other', body: { n: 3 } },
      ]);
    });
    await seen.waitForIds(1);
    expect(seen.deliveries[0]?.id).toBe(other);
    await waitFor(() => failures.some((f) => f.parked));
    expect(failures.map((f) => f.attempts)).toEqual([1, 2, 3]);
    await seen.waitForIds(2);
    expect(seen.deliveries[1]?.id).toBe(after);
    const parked = await outbox.parked(pool);
    expect(parked).toHaveLength(1);
    expect(parked[0]).toMatchObject({ id: stuck, topic: nowhere, key: 'k', status: 'parked', attempts: 3 });
    expect(parked[0]?.lastError).toMatch(/unroutable/);
    // A group appears for the topic; the row re-queued is published.
    const late = new Collector<{ n: number }>();
    const lateSub = await broker.subscribe({ topic: nowhere, group: 'g' }, late.handler());
    // The command line lists it, and refuses to re-queue an id that is not parked.
    const listed = await runCli(['outbox', '--pg', inject('pgUrl'), '--table', table]);
    expect(listed.stderr).toBe('');
    expect(listed.stdout).toContain(`${stuck}  parked  topic ${nowhere}  key k  attempts 3`);
    expect(listed.stdout).toMatch(/unroutable/);
    const wrong = await runCli(['outbox', '--pg', inject('pgUrl'), '--table', table, '--requeue', after]);
    expect(wrong).toMatchObject({ code: 1, stderr: expect.stringMatching(/no parked row with id/) });
    expect(
      await runCli(['outbox', '--pg', inject('pgUrl'), '--table', table, '--requeue', stuck]),
    ).toMatchObject({ code: 0, stdout: 'requeued 1\n' });
    await late.waitForIds(1);
    expect(late.deliveries[0]?.id).toBe(stuck);
    expect(await outbox.parked(pool)).toEqual([]);
    await relay?.close();
    await Promise.all([sub.close(), lateSub.close()]);
    await broker.close();
  });
});

describe('outbox on rabbitmq: a row retried in the same fetch as fresh rows', () => {
  it('is sent on its own, so its failure does not make the fresh rows go twice', async () => {
    // holdUnroutedMs 0: a message no queue takes is refused, a real failure.
    const broker = await connect(inject('amqpUrl'), { rabbitmq: { holdUnroutedMs: 0 } });
    const table = await freshOutboxTable(pool);
    const outbox = createOutbox({ table });
    const nowhere = uniqueName('ob-nowhere');
    const topic = uniqueName('ob-fresh');
    const seen = new Collector<{ n: number }>();
    const sub = await broker.subscribe({ topic, group: 'g' }, seen.handler());
    try {
      await outbox.add(pool, { topic: nowhere, key: 'stuck', body: { n: 0 } });
      // Polling only, slowly: the retry (due after 10 ms) and the fresh rows, written after
      // the first failure, come in one fetch.
      const [relay] = await relays(1, {
        table,
        producer: broker.producer(),
        listen: false,
        pollMs: 500,
        maxAttempts: 2,
        backoff: { initialMs: 10, maxMs: 10 },
      });
      const failures: boolean[] = [];
      relay?.on('failed', (e) => failures.push(e.parked));
      await waitFor(() => failures.length === 1);
      const ids = await outbox.addBatch(
        pool,
        Array.from({ length: 20 }, (_, n) => ({ topic, key: `k${n}`, body: { n } })),
      );
      await waitFor(() => failures.length === 2);
      expect(failures).toEqual([false, true]);
      await seen.waitForIds(20);
      // A fence: written after, delivered after anything the relay sent before it.
      const fence = await outbox.add(pool, { topic, key: 'k0', body: { n: 99 } });
      await waitFor(() => seen.ids.has(fence));
      // Each once: no duplicate of a fresh row.
      expect(seen.deliveries.map((d) => d.id).sort()).toEqual([...ids, fence].sort());
      await relay?.close();
    } finally {
      await sub.close();
      await broker.close();
    }
  });
});

describe('outbox on rabbitmq: a row refused with a retriable error every time', () => {
  it('is not parked after maxAttempts, is listed as failing, and is parked after parkAfterMs', async () => {
    const broker = await connect(inject('amqpUrl'));
    const table = await freshOutboxTable(pool);
    const outbox = createOutbox({ table });
    const topic = uniqueName('ob-full');
    await broker.ensureTopic(topic);
    // A queue that is always full and rejects publishes: RabbitMQ nacks every message to the
    // topic, which mqkit reports as a retriable PublishError.
    const raw = await rawConnection(inject('amqpUrl'));
    const full = uniqueName('ob-full-q');
    const ch = await raw.createChannel();
    try {
      await ch.assertQueue(full, {
        autoDelete: false,
        arguments: { 'x-max-length': 0, 'x-overflow': 'reject-publish' },
      });
      await ch.bindQueue(full, topic, '#');
      const id = await outbox.add(pool, { topic, key: 'k', body: { n: 1 } });
      const [relay] = await relays(1, {
        table,
        producer: broker.producer(),
        maxAttempts: 1,
        parkAfterMs: 1500,
        backoff: { initialMs: 50, maxMs: 100 },
      });
      const failures: { attempts: number; parked: boolean; retriable: boolean }[] = [];
      relay?.on('failed', (e) =>
        failures.push({
          attempts: e.attempts,
          parked: e.parked,
          retriable: (e.error as { retriable?: boolean }).retriable === true,
        }),
      );
      await waitFor(() => failures.length > 0);
      // Past maxAttempts, not parked: the error is retriable.
      expect(failures[0]).toEqual({ attempts: 1, parked: false, retriable: true });
      expect(await outbox.parked(pool)).toEqual([]);
      const failing = await outbox.parked(pool, { failing: true });
      expect(failing).toMatchObject([{ id, status: 'pending' }]);
      expect(failing[0]?.lastError).toMatch(/nack/);
      const listed = await runCli(['outbox', '--pg', inject('pgUrl'), '--table', table, '--failing']);
      expect(listed.stdout).toContain(`${id}  pending  topic ${topic}  key k`);
      expect(listed.stdout).toMatch(/parked or failing 1/);
      await waitFor(() => failures.some((f) => f.parked));
      expect(failures.filter((f) => f.parked)).toHaveLength(1);
      expect((await outbox.parked(pool)).map((r) => [r.id, r.status])).toEqual([[id, 'parked']]);
      await relay?.close();
    } finally {
      await ch.deleteQueue(full).catch(() => {});
      await raw.close();
      await broker.close();
    }
  });
});

describe('outbox: a table made by an earlier version', () => {
  it('gets the failing_since column from ensureOutbox', async () => {
    const table = await freshOutboxTable(pool);
    await pool.query(`ALTER TABLE ${table} DROP COLUMN failing_since`);
    await ensureOutbox(pool, { table });
    const { rows } = await pool.query(
      `SELECT 1 FROM pg_attribute WHERE attrelid = $1::regclass AND attname = 'failing_since' AND NOT attisdropped`,
      [table],
    );
    expect(rows).toHaveLength(1);
  });
});

describe('outbox: notify false', () => {
  it('drops the NOTIFY trigger of an existing table, and a polling relay still publishes', async () => {
    const broker = await connect(`memory://${uniqueName('nonotify')}`);
    const table = await freshOutboxTable(pool);
    const triggers = async () =>
      (
        await pool.query(`SELECT 1 FROM pg_trigger WHERE tgrelid = $1::regclass AND tgname = $2`, [
          table,
          `${table}_notify`,
        ])
      ).rowCount;
    expect(await triggers()).toBe(1);
    await ensureOutbox(pool, { table, notify: false });
    expect(await triggers()).toBe(0);
    const topic = uniqueName('ob-nonotify');
    const seen = new Collector();
    const sub = await broker.subscribe({ topic, group: 'g' }, seen.handler());
    const [relay] = await relays(1, { table, producer: broker.producer(), listen: false, pollMs: 50 });
    const id = await createOutbox({ table }).add(pool, { topic, body: 1 });
    await waitFor(() => seen.ids.has(id));
    await relay?.close();
    await sub.close();
    await broker.close();
  });
});

describe('outbox: retention', () => {
  it('marks rows sent and a bounded cleanup deletes them once older than retainSentMs', async () => {
    const broker = await connect(`memory://${uniqueName('ret')}`);
    const table = await freshOutboxTable(pool);
    const outbox = createOutbox({ table });
    const topic = uniqueName('ob-ret');
    const seen = new Collector();
    const sub = await broker.subscribe({ topic, group: 'g' }, seen.handler());
    await inTransaction(pool, async (tx) => {
      await outbox.addBatch(
        tx,
        Array.from({ length: 25 }, (_, i) => ({ topic, body: i })),
      );
    });
    const [relay] = await relays(1, {
      table,
      producer: broker.producer(),
      retainSentMs: 1,
      cleanupIntervalMs: 20,
      cleanupBatch: 10,
    });
    const cleaned: number[] = [];
    relay?.on('cleaned', (e) => cleaned.push(e.deleted));
    await seen.waitForIds(25);
    await waitFor(async () => (await pool.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n === 0);
    expect(Math.max(...cleaned)).toBeLessThanOrEqual(10);
    expect(cleaned.reduce((a, b) => a + b, 0)).toBe(25);
    await relay?.close();
    await sub.close();
    await broker.close();
  });
});

describe('mqkit demo --outbox', () => {
  it('publishes each committed order’s events once and in order, and none of a rolled-back order', async () => {
    const broker = await connect(`memory://${uniqueName('demo-outbox')}`);
    try {
      const summary = await runOutboxDemo(broker, 'memory://', 500, pool);
      expect(summary).toMatchObject({ orders: 500, rolledBack: 20, rolledBackSeen: 0, messagesSent: 960 });
      expect(summary.services).toEqual([
        { name: 'stock', tags: 'all', handled: 960, duplicatesAbsorbed: 0, orderViolations: 0 },
        { name: 'coupons', tags: 'placed', handled: 480, duplicatesAbsorbed: 0, orderViolations: 0 },
        { name: 'points', tags: 'paid', handled: 480, duplicatesAbsorbed: 0, orderViolations: 0 },
      ]);
      expect(formatOutboxDemo(summary)).toContain('events of rolled-back orders delivered: 0');
    } finally {
      await broker.close();
    }
  });

  it('takes --outbox as a flag, without a value', async () => {
    const result = await runCli(['demo', '--outbox=yes']);
    expect(result).toMatchObject({ code: 2, stderr: expect.stringMatching(/--outbox takes no value/) });
  });
});

describe('outbox relay: its PostgreSQL session is killed', () => {
  it('stops publishing its slots, opens a new session, takes slots again and loses nothing', async () => {
    const broker = await connect(`memory://${uniqueName('session')}`);
    const table = await freshOutboxTable(pool, 8);
    const outbox = createOutbox({ table });
    const topic = uniqueName('ob-session');
    const seen = new Collector<{ n: number }>();
    const sub = await broker.subscribe({ topic, group: 'g' }, seen.handler());
    const errors: string[] = [];
    const [relay] = await relays(1, { table, producer: broker.producer() });
    const ownedHistory: number[] = [];
    relay?.on('slots', (e) => ownedHistory.push(e.owned.length));
    relay?.on('error', (e) => errors.push(e.context));
    await waitFor(() => relay?.slots.length === 8);
    const ids = await inTransaction(pool, (tx) =>
      outbox.addBatch(
        tx,
        Array.from({ length: 50 }, (_, n) => ({ topic, key: `k${n % 5}`, body: { n } })),
      ),
    );
    await seen.waitForIds(50);
    // The session holding the slot locks (and LISTEN), as an operator or a failover would end it.
    const killed = await pool.query(
      `SELECT pg_terminate_backend(pid) FROM (SELECT DISTINCT pid FROM pg_locks
         WHERE locktype = 'advisory' AND objsubid = 2
           AND classid = (hashtext($1)::bigint & 4294967295)::text::oid) s`,
      [`mqkit-outbox:${table}`],
    );
    expect(killed.rowCount).toBe(1);
    await waitFor(() => ownedHistory.includes(0));
    await waitFor(() => relay?.slots.length === 8);
    const more = await inTransaction(pool, (tx) =>
      outbox.addBatch(
        tx,
        Array.from({ length: 50 }, (_, n) => ({ topic, key: `k${n % 5}`, body: { n: 50 + n } })),
      ),
    );
    await seen.waitForIds(100);
    expect([...ids, ...more].every((id) => seen.ids.has(id))).toBe(true);
    expect(errors.length).toBeGreaterThan(0);
    await relay?.close();
    await sub.close();
    await broker.close();
  });
});

describe('outbox relays: one session is killed while another relay runs and rows keep coming', () => {
  it('every row arrives, with 0 per-key order violations among first deliveries', async () => {
    const broker = await connect(`memory://${uniqueName('kill2')}`);
    const table = await freshOutboxTable(pool, 8);
    const outbox = createOutbox({ table });
    const topic = uniqueName('ob-kill2');
    const seen = new Collector<{ n: number }>();
    const sub = await broker.subscribe({ topic, group: 'g' }, seen.handler());
    const [a, b] = await relays(2, { table, producer: broker.producer() });
    await waitFor(() => a?.slots.length === 4 && b?.slots.length === 4);
    const lost: number[] = [];
    a?.on('slots', (e) => lost.push(e.owned.length));
    let writing = true;
    let n = 0;
    const ids: string[] = [];
    const writer = (async () => {
      while (writing) {
        const base = n;
        n += 10;
        ids.push(
          ...(await inTransaction(pool, (tx) =>
            outbox.addBatch(
              tx,
              Array.from({ length: 10 }, (_, i) => ({ topic, key: `k${i}`, body: { n: base + i } })),
            ),
          )),
        );
      }
    })();
    await waitFor(() => ids.length >= 100);
    const killed = await pool.query(
      `SELECT pg_terminate_backend(pid) FROM (SELECT DISTINCT pid FROM pg_locks
         WHERE locktype = 'advisory' AND objsubid = 2 AND objid::int = $2
           AND classid = (hashtext($1)::bigint & 4294967295)::text::oid) s`,
      [`mqkit-outbox:${table}`, a?.slots[0]],
    );
    expect(killed.rowCount).toBe(1);
    await waitFor(() => lost.includes(0));
    await waitFor(() => (a?.slots.length ?? 0) + (b?.slots.length ?? 0) === 8 && (a?.slots.length ?? 0) > 0);
    writing = false;
    await writer;
    await seen.waitForIds(ids.length);
    const last = new Map<string, number>();
    const first = new Set<string>();
    let violations = 0;
    for (const d of seen.deliveries) {
      if (first.has(d.id)) continue;
      first.add(d.id);
      const key = d.key ?? '';
      if ((last.get(key) ?? -1) > d.body.n) violations++;
      last.set(key, d.body.n);
    }
    expect(violations).toBe(0);
    expect(ids.every((id) => first.has(id))).toBe(true);
    await Promise.all([a?.close(), b?.close()]);
    await sub.close();
    await broker.close();
  });
});

describe('outbox relay: its PostgreSQL session goes silent (half-open connection)', () => {
  it('publishes nothing of the slots it lost while another relay holds them, and close() still ends', async () => {
    const broker = await connect(`memory://${uniqueName('silent')}`);
    const table = await freshOutboxTable(pool, 8);
    const outbox = createOutbox({ table });
    const topic = uniqueName('ob-silent');
    const seen = new Collector<{ n: number }>();
    const sub = await broker.subscribe({ topic, group: 'g' }, seen.handler());
    const proxy = await pgSilencingProxy(inject('pgUrl'));
    const proxiedPool = new pg.Pool({ connectionString: proxy.url, max: 4 });
    // A records what it hands to the broker: a real producer, wrapped.
    const sentByA = new Set<string>();
    const real = broker.producer();
    const producerA = new Proxy(real, {
      get(target, prop) {
        if (prop === 'sendBatch') {
          return (messages: { id?: string }[]) => {
            for (const m of messages) sentByA.add(m.id ?? '');
            return target.sendBatch(messages as never);
          };
        }
        if (prop === 'send') {
          return (message: { id?: string }) => {
            sentByA.add(message.id ?? '');
            return target.send(message as never);
          };
        }
        const value = Reflect.get(target, prop);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    try {
      // A polls fast and would not rebalance (nor notice the silence) for a minute.
      const a = await startOutboxRelay({
        pool: proxiedPool,
        producer: producerA,
        table,
        pollMs: 20,
        rebalanceMs: 60_000,
        listen: false,
        sessionTimeoutMs: 1000,
        logger: quietLogger,
      });
      await waitFor(() => a.slots.length === 8);
      const [b] = await relays(1, { table, producer: broker.producer(), listen: false });
      const holders = await pool.query(
        `SELECT DISTINCT pid FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2
           AND classid = (hashtext($1)::bigint & 4294967295)::text::oid`,
        [`mqkit-outbox:${table}`],
      );
      expect(holders.rows).toHaveLength(1);
      expect(proxy.silence(holders.rows[0].pid as number)).toBe(true);
      // PostgreSQL ended A's session and released its locks; A was not told.
      await waitFor(() => b?.slots.length === 8);
      expect(a.slots).toHaveLength(8);
      const ids: string[] = [];
      for (let t = 0; t < 20; t++) {
        ids.push(
          ...(await inTransaction(pool, (tx) =>
            outbox.addBatch(
              tx,
              Array.from({ length: 10 }, (_, i) => ({ topic, key: `k${i % 5}`, body: { n: t * 10 + i } })),
            ),
          )),
        );
      }
      await seen.waitForIds(200);
      expect(ids.filter((id) => sentByA.has(id))).toEqual([]);
      // Per key, the first delivery of each message comes in insertion order.
      const last = new Map<string, number>();
      const first = new Set<string>();
      let violations = 0;
      for (const d of seen.deliveries) {
        if (first.has(d.id)) continue;
        first.add(d.id);
        const key = d.key ?? '';
        if ((last.get(key) ?? -1) > d.body.n) violations++;
        last.set(key, d.body.n);
      }
      expect(violations).toBe(0);
      // Its session queries time out instead of waiting on the mute socket forever.
      await a.close();
    } finally {
      await sub.close();
      await broker.close();
      await proxiedPool.end().catch(() => {});
      await proxy.close();
    }
  });
});

describe('outbox relay: a closed producer', () => {
  it('counts no attempt against the rows and parks nothing; the rows wait', async () => {
    const broker = await connect(`memory://${uniqueName('closed')}`);
    const table = await freshOutboxTable(pool);
    const outbox = createOutbox({ table });
    const producer = broker.producer();
    await producer.close();
    const [relay] = await relays(1, { table, producer, maxAttempts: 1, backoff: { initialMs: 0 } });
    const errors: unknown[] = [];
    relay?.on('error', (e) => errors.push(e.error));
    await inTransaction(pool, (tx) => outbox.add(tx, { topic: uniqueName('t'), key: 'k', body: 1 }));
    await waitFor(() => errors.length >= 2);
    const { rows } = await pool.query(`SELECT status, attempts FROM ${table}`);
    expect(rows).toEqual([{ status: 'pending', attempts: 0 }]);
    // A second close() is the first one's promise: it resolves only once the relay is closed.
    const closing = relay?.close();
    expect(relay?.close()).toBe(closing);
    await closing;
    await broker.close();
  });
});

describe('outbox relays: more relays than slots', () => {
  it('a relay without slots stands by and takes over when the holder closes', async () => {
    const broker = await connect(`memory://${uniqueName('standby')}`);
    const table = await freshOutboxTable(pool, 1);
    const outbox = createOutbox({ table });
    const topic = uniqueName('ob-standby');
    const seen = new Collector<{ n: number }>();
    const sub = await broker.subscribe({ topic, group: 'g' }, seen.handler());
    const [first, second] = await relays(2, { table, producer: broker.producer() });
    await waitFor(() => (first?.slots.length ?? 0) + (second?.slots.length ?? 0) === 1);
    const [holder, standby] = first?.slots.length === 1 ? [first, second] : [second, first];
    const published = new Map<OutboxRelay | undefined, number>();
    for (const r of [holder, standby])
      r?.on('published', (e) => published.set(r, (published.get(r) ?? 0) + e.count));
    await inTransaction(pool, (tx) =>
      outbox.addBatch(
        tx,
        Array.from({ length: 20 }, (_, n) => ({ topic, key: `k${n % 3}`, body: { n } })),
      ),
    );
    await seen.waitForIds(20);
    expect(published.get(standby)).toBeUndefined();
    await holder?.close();
    await waitFor(() => standby?.slots.length === 1);
    await inTransaction(pool, (tx) => outbox.add(tx, { topic, key: 'k0', body: { n: 20 } }));
    await seen.waitForIds(21);
    await waitFor(() => published.get(standby) === 1); // reported once marked, after the delivery
    await standby?.close();
    await sub.close();
    await broker.close();
  });
});
