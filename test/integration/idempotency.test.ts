import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { connect, type Delivery, isMqError } from '../../src/index.js';
import {
  ensureLedger,
  type IdempotencyStore,
  idempotent,
  MemoryIdempotencyStore,
  RedisIdempotencyStore,
  transactional,
} from '../../src/patterns/index.js';
import { testDelivery, uniqueName, waitFor } from '../../src/testing/index.js';

let redis: Redis;
let pool: pg.Pool;

beforeAll(async () => {
  redis = new Redis(inject('redisUrl'), { enableAutoPipelining: true, lazyConnect: true });
  await redis.connect();
  pool = new pg.Pool({ connectionString: inject('pgUrl'), max: 8 });
  await ensureLedger(pool);
  await pool.query('CREATE TABLE IF NOT EXISTS idem_effects (id serial PRIMARY KEY, k text NOT NULL)');
});

afterAll(async () => {
  redis?.disconnect();
  await pool?.end();
});

const delivery = (id: string) => testDelivery({ id });

const leaseStores: [string, () => IdempotencyStore][] = [
  ['memory', () => new MemoryIdempotencyStore()],
  ['redis', () => new RedisIdempotencyStore(redis, `${uniqueName('idem')}:`)],
];

describe.each(leaseStores)('idempotent handler on the %s store', (_name, makeStore) => {
  it('runs the effect once when two deliveries of one message arrive at once', async () => {
    const inner = makeStore();
    let claims = 0;
    const store: IdempotencyStore = {
      claim: (...args) => {
        claims++;
        return inner.claim(...args);
      },
      complete: (...args) => inner.complete(...args),
      release: (...args) => inner.release(...args),
    };
    let effects = 0;
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const handler = idempotent(
      async () => {
        effects++;
        await gate;
      },
      { store },
    );
    const first = handler(delivery('m1'));
    await waitFor(() => effects === 1);
    let secondDone = false;
    const second = Promise.resolve(handler(delivery('m1'))).then(() => {
      secondDone = true;
    });
    await waitFor(() => claims >= 3); // the second delivery has found the key busy twice
    expect(secondDone).toBe(false); // it waits on the first one's lease instead of running
    release();
    await Promise.all([first, second]);
    expect(effects).toBe(1);
  });

  it('lets a later delivery do the work once a crashed claimer’s lease expires', async () => {
    const store = makeStore();
    expect(await store.claim('m2', 'crashed-consumer', 300)).toBe('claimed');
    let effects = 0;
    const handler = idempotent(
      () => {
        effects++;
      },
      { store, leaseMs: 300 },
    );
    // Waits out the dead claimer's lease (as long as its own), then does the work. The waiter
    // gives up only on a claim it sent after one full lease had passed since it found the key
    // busy, by which time this lease has expired however late its timers fire.
    await handler(delivery('m2'));
    expect(effects).toBe(1);
    await handler(delivery('m2'));
    expect(effects).toBe(1);
  });

  it('waits out a dead lease as long as its own even when each claim round trip is slow', async () => {
    // A loaded machine, made deterministic: every claim's answer arrives 120 ms after the store
    // decided it. A waiter that checks its deadline when an answer arrives sees a claim the
    // store answered 'busy' before the lease expired come back after its deadline.
    const inner = makeStore();
    const slow: IdempotencyStore = {
      claim: async (...args) => {
        const result = await inner.claim(...args);
        await new Promise((resolve) => setTimeout(resolve, 120));
        return result;
      },
      complete: (...args) => inner.complete(...args),
      release: (...args) => inner.release(...args),
    };
    expect(await inner.claim('m8', 'crashed-consumer', 300)).toBe('claimed');
    let effects = 0;
    const handler = idempotent(
      () => {
        effects++;
      },
      { store: slow, leaseMs: 300 },
    );
    await handler(delivery('m8'));
    expect(effects).toBe(1);
  });

  it('reports a handler that outlived its lease, and still marks the key done', async () => {
    const store = makeStore();
    let effects = 0;
    let lost = 0;
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const handler = idempotent(
      async () => {
        if (++effects === 1) await gate;
      },
      { store, leaseMs: 100, onLeaseLost: () => lost++ },
    );
    const slow = handler(delivery('m7'));
    await waitFor(() => effects === 1);
    await handler(delivery('m7')); // the slow one's lease expires, so this one runs the effect
    expect(lost).toBe(0);
    release();
    await slow;
    expect(effects).toBe(2);
    expect(lost).toBe(1);
    await handler(delivery('m7'));
    expect(effects).toBe(2);
  });

  it('gives up with a retriable ConflictError when another consumer holds the key past one lease', async () => {
    const store = makeStore();
    expect(await store.claim('m6', 'slow-consumer', 60_000)).toBe('claimed');
    let effects = 0;
    const handler = idempotent(
      () => {
        effects++;
      },
      { store, leaseMs: 100 },
    );
    const error = await Promise.resolve(handler(delivery('m6'))).catch((e: unknown) => e);
    expect(isMqError(error, 'CONFLICT')).toBe(true);
    expect((error as { retriable: boolean }).retriable).toBe(true);
    expect(effects).toBe(0);
  });

  it('releases the claim when the handler fails, so the retry proceeds at once', async () => {
    const store = makeStore();
    let calls = 0;
    const handler = idempotent(
      () => {
        if (++calls === 1) throw new Error('boom');
      },
      { store },
    );
    await expect(Promise.resolve(handler(delivery('m3')))).rejects.toThrow('boom');
    await handler(delivery('m3'));
    await handler(delivery('m3'));
    expect(calls).toBe(2);
  });

  it('derives a business key when asked', async () => {
    const store = makeStore();
    let effects = 0;
    const handler = idempotent(
      () => {
        effects++;
      },
      { store, key: (d) => `order:${(d.headers.order as string) ?? ''}` },
    );
    await handler({ ...delivery('a'), headers: { order: '42' } });
    await handler({ ...delivery('b'), headers: { order: '42' } });
    expect(effects).toBe(1);
  });
});

describe('store unreachable', () => {
  it('Redis: the handler does not run and the error propagates (the message is not acked)', async () => {
    const down = new Redis({
      host: '127.0.0.1',
      port: 1,
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
    });
    down.on('error', () => {});
    let effects = 0;
    const handler = idempotent(
      () => {
        effects++;
      },
      { store: new RedisIdempotencyStore(down) },
    );
    await expect(Promise.resolve(handler(delivery('m4')))).rejects.toThrow();
    expect(effects).toBe(0);
    down.disconnect();
  });

  it('PostgreSQL: the handler does not run and the error propagates', async () => {
    const down = new pg.Pool({ host: '127.0.0.1', port: 1, connectionTimeoutMillis: 2000 });
    let effects = 0;
    const handler = transactional(
      async () => {
        effects++;
      },
      { pool: down },
    );
    await expect(Promise.resolve(handler(delivery('m5')))).rejects.toThrow();
    expect(effects).toBe(0);
    await down.end();
  });
});

describe('transactional (PostgreSQL ledger in the handler’s transaction)', () => {
  async function effectsOf(k: string): Promise<number> {
    const { rows } = await pool.query('SELECT count(*)::int AS n FROM idem_effects WHERE k = $1', [k]);
    return rows[0].n as number;
  }

  it('commits the effect and its ledger row together, once, even for concurrent duplicates', async () => {
    const k = uniqueName('pg');
    const handler = transactional(
      async (_d, tx) => {
        await tx.query('INSERT INTO idem_effects (k) VALUES ($1)', [k]);
        await tx.query('SELECT pg_sleep(0.05)');
      },
      { pool },
    );
    await Promise.all([handler(delivery(k)), handler(delivery(k)), handler(delivery(k))]);
    expect(await effectsOf(k)).toBe(1);
  });

  it('rolls back the effect and the ledger row when the handler fails, so the retry does the work', async () => {
    const k = uniqueName('pg');
    let calls = 0;
    const handler = transactional(
      async (_d, tx) => {
        await tx.query('INSERT INTO idem_effects (k) VALUES ($1)', [k]);
        if (++calls === 1) throw new Error('crash after the write');
      },
      { pool },
    );
    await expect(Promise.resolve(handler(delivery(k)))).rejects.toThrow('crash after the write');
    expect(await effectsOf(k)).toBe(0);
    await handler(delivery(k));
    await handler(delivery(k));
    expect(await effectsOf(k)).toBe(1);
  });
});

describe.each([
  ['memory', () => 'memory://idempotency'],
  ['rabbitmq', () => inject('amqpUrl')],
  ['kafka', () => inject('kafkaUrl')],
])('duplicate consumption on %s', (_kind, url) => {
  it('applies each message once per store when every message is delivered twice', async () => {
    const broker = await connect(url());
    const topic = uniqueName('dup');
    await broker.ensureTopic(topic, { partitions: 2 });
    const effects = { memory: new Map<string, number>(), redis: new Map<string, number>() };
    const bump = (m: Map<string, number>, id: string) => m.set(id, (m.get(id) ?? 0) + 1);
    const pgKey = uniqueName('pgdup');
    const handled = { mem: 0, redis: 0, pg: 0 };
    // Counts deliveries that finished (effects and absorbed duplicates alike).
    const counted =
      (group: keyof typeof handled, inner: (d: Delivery<unknown>) => Promise<void> | void) =>
      async (d: Delivery<unknown>) => {
        await inner(d);
        handled[group]++;
      };
    const subs = [
      await broker.subscribe(
        { topic, group: uniqueName('mem'), concurrency: 4 },
        counted(
          'mem',
          idempotent((d) => void bump(effects.memory, d.id), { store: new MemoryIdempotencyStore() }),
        ),
      ),
      await broker.subscribe(
        { topic, group: uniqueName('redis'), concurrency: 4 },
        counted(
          'redis',
          idempotent((d) => void bump(effects.redis, d.id), {
            store: new RedisIdempotencyStore(redis, `${topic}:`),
          }),
        ),
      ),
      await broker.subscribe(
        { topic, group: uniqueName('pg'), concurrency: 4 },
        counted(
          'pg',
          transactional(
            async (d, tx) => {
              await tx.query('INSERT INTO idem_effects (k) VALUES ($1)', [`${pgKey}:${d.id}`]);
            },
            { pool },
          ),
        ),
      ),
    ];
    const producer = broker.producer();
    const sent = await producer.sendBatch(
      Array.from({ length: 50 }, (_, i) => ({ topic, key: `k${i % 5}`, body: { i } })),
    );
    // The seed's failure: the same messages again (a producer retry, a consumer restart replaying).
    await producer.sendBatch(sent.map((r, i) => ({ topic, key: `k${i % 5}`, body: { i }, id: r.id })));
    await waitFor(() => handled.mem >= 100 && handled.redis >= 100 && handled.pg >= 100, {
      timeoutMs: 60_000,
      message: () => JSON.stringify(handled),
    });
    const { rows } = await pool.query('SELECT count(*)::int AS n FROM idem_effects WHERE k LIKE $1', [
      `${pgKey}:%`,
    ]);
    expect(rows[0].n).toBe(50);
    expect(effects.memory.size).toBe(50);
    expect(effects.redis.size).toBe(50);
    expect([...effects.memory.values(), ...effects.redis.values()].every((n) => n === 1)).toBe(true);
    await Promise.all(subs.map((s) => s.close()));
    await broker.close();
  });
});

describe('idempotent options', () => {
  it('refuses unknown keys, bad durations and a done TTL shorter than the lease, naming the field', () => {
    const store = new MemoryIdempotencyStore();
    const field = (options: object) => {
      try {
        idempotent(() => {}, { store, ...options } as never);
      } catch (error) {
        return isMqError(error, 'CONFIG') ? ((error as { field?: string }).field ?? error.message) : 'other';
      }
      return 'accepted';
    };
    expect(field({ leaseMS: 10 })).toContain('leaseMS');
    expect(field({ leaseMs: 0 })).toContain('idempotent.leaseMs');
    expect(field({ leaseMs: 60_000, ttlMs: 1000 })).toContain('idempotent.ttlMs');
    expect(field({ leaseMs: 1000, ttlMs: 60_000 })).toBe('accepted');
  });
});
