import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import { type Delivery, type Handler, isMqError, type Producer } from '../../src/index.js';
import { idempotent, RedisIdempotencyStore, transactional } from '../../src/patterns/index.js';
import { waitFor } from '../../src/testing/index.js';
import type { Ledger } from './ledger.js';

/** A small seeded PRNG (mulberry32): the seed alone decides keys, poison and fault timing. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An integer in [lo, hi]. */
export function between(random: () => number, lo: number, hi: number): number {
  return lo + Math.floor(random() * (hi - lo + 1));
}

export const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The body every reliability message carries: what the checker needs, seen from the consumer. */
export interface RelBody {
  key: string;
  seq: number;
  poison: boolean;
}

/** Where the effect behind `idempotent()` is applied and counted: Redis (`idempotent` + Redis store) or PostgreSQL (`transactional`). */
export type EffectStore = 'redis' | 'pg';

/** Shared clients of a run. */
export interface Stores {
  redis: Redis;
  pool: pg.Pool;
  redisUrl: string;
  pgUrl: string;
}

const EFFECTS_TABLE = 'mqkit_rel_effects';
const LEDGER_TABLE = 'mqkit_rel_processed';

export async function prepareStores(stores: Stores): Promise<void> {
  await stores.pool.query(
    `CREATE TABLE IF NOT EXISTS ${EFFECTS_TABLE} (run text NOT NULL, grp text NOT NULL, id text NOT NULL)`,
  );
  await stores.pool.query(`CREATE INDEX IF NOT EXISTS ${EFFECTS_TABLE}_run ON ${EFFECTS_TABLE} (run, grp)`);
  await stores.pool.query(
    `CREATE TABLE IF NOT EXISTS ${LEDGER_TABLE} (key text PRIMARY KEY, processed_at timestamptz NOT NULL DEFAULT now())`,
  );
}

/**
 * The handler of a reliability consumer: records the delivery, fails poison messages, and
 * applies the message's effect exactly once per `group` through the store's idempotency
 * wrapper. The effect is a counter in the store itself (a Redis hash field, a PostgreSQL row in
 * the handler's transaction), so a consumer killed at any point cannot hide a second effect.
 * `afterEffect` runs after the wrapper returned (effect done and recorded), before the ack.
 */
export function relHandler(options: {
  run: string;
  group: string;
  store: EffectStore;
  redis: Redis | undefined;
  pool: pg.Pool | undefined;
  onDelivery: (d: Delivery<RelBody>) => void;
  delayMs?: number;
  afterEffect?: (d: Delivery<RelBody>) => void | Promise<void>;
}): Handler<RelBody> {
  const { run, group, store } = options;
  let inner: Handler<RelBody>;
  if (store === 'redis') {
    const redis = options.redis as Redis;
    inner = idempotent<RelBody>(
      async (d) => {
        await redis.hincrby(`rel:effects:${run}:${group}`, d.id, 1);
      },
      { store: new RedisIdempotencyStore(redis, `rel:idem:${run}:${group}:`), leaseMs: 15_000 },
    );
  } else {
    inner = transactional<RelBody, pg.Pool>(
      async (d, tx) => {
        await tx.query(`INSERT INTO ${EFFECTS_TABLE} (run, grp, id) VALUES ($1, $2, $3)`, [run, group, d.id]);
      },
      { pool: options.pool as pg.Pool, table: LEDGER_TABLE, key: (d) => `${run}:${group}:${d.id}` },
    );
  }
  return async (d) => {
    options.onDelivery(d);
    if (options.delayMs) await delay(options.delayMs);
    if (d.body.poison) throw new Error(`poison message ${d.id}`);
    await inner(d);
    await options.afterEffect?.(d);
  };
}

/** Reads a group's effect counts back from its store. */
export async function loadEffects(
  stores: Stores,
  run: string,
  group: string,
  store: EffectStore,
): Promise<Map<string, number>> {
  if (store === 'redis') {
    const all = await stores.redis.hgetall(`rel:effects:${run}:${group}`);
    return new Map(Object.entries(all).map(([id, n]) => [id, Number(n)]));
  }
  const rows = await stores.pool.query<{ id: string; n: string }>(
    `SELECT id, count(*) AS n FROM ${EFFECTS_TABLE} WHERE run = $1 AND grp = $2 GROUP BY id`,
    [run, group],
  );
  return new Map(rows.rows.map((r) => [r.id, Number(r.n)]));
}

export async function cleanupStores(stores: Stores, run: string): Promise<void> {
  await stores.pool.query(`DELETE FROM ${EFFECTS_TABLE} WHERE run = $1`, [run]).catch(() => {});
  await stores.pool.query(`DELETE FROM ${LEDGER_TABLE} WHERE key LIKE $1`, [`${run}:%`]).catch(() => {});
  const keys = await stores.redis.keys(`rel:*:${run}:*`).catch(() => [] as string[]);
  if (keys.length > 0) await stores.redis.del(...keys).catch(() => {});
}

/** Records a delivery in the ledger. */
export function recordDelivery(ledger: Ledger, d: Delivery<RelBody>, consumer: string, group: string): void {
  ledger.deliver({ id: d.id, key: d.body?.key, seq: d.body?.seq, attempt: d.attempt, consumer, group });
}

export interface PublishPlan {
  topic: string;
  run: string;
  /** Messages in all; Infinity to publish until `stop()` says so. */
  count: number;
  publishers: number;
  /** Keys per publisher (each publisher owns its keys, so per-key send order is its own). */
  keysPerPublisher: number;
  /** Message indexes that are poison. */
  poison?: ReadonlySet<number>;
  /** Send each message a second time with the same id once the first confirmed (injected duplicates). */
  duplicate?: boolean;
  /** Pause between one publisher's sends, ms (paces an open-ended run). Default 0. */
  paceMs?: number;
  /** Publish timeout of each send (the producer's `timeoutMs`). */
  timeoutMs: number;
  /** Give up re-sending a refused message after this long. Default 120 000 ms. */
  giveUpMs?: number;
  stop?: () => boolean;
  random: () => number;
}

/**
 * Publishes with `publishers` concurrent loops, each awaiting its own sends, so a key's
 * messages are sent one after another. A refused send is sent again with the same id (a
 * duplicate if the refused one was stored after all, absorbed by the idempotency wrapper)
 * until confirmed or `giveUpMs` passed; a refusal that is not retriable ends that message.
 */
export async function publish(ledger: Ledger, producer: Producer, plan: PublishPlan): Promise<void> {
  let next = 0;
  const giveUpMs = plan.giveUpMs ?? 120_000;
  const loops = Array.from({ length: plan.publishers }, async (_, p) => {
    const seqs = new Map<string, number>();
    for (;;) {
      if (plan.stop?.()) return;
      const i = next++;
      if (i >= plan.count) return;
      const key = `p${p}k${Math.floor(plan.random() * plan.keysPerPublisher)}`;
      const seq = (seqs.get(key) ?? 0) + 1;
      seqs.set(key, seq);
      const id = `${plan.run}-${i}`;
      const poison = plan.poison?.has(i) ?? false;
      const body: RelBody = { key, seq, poison };
      const until = Date.now() + giveUpMs;
      let confirmed = false;
      for (let attempt = 0; !confirmed && Date.now() < until; attempt++) {
        const started = ledger.send({ id, key, seq, poison, timeoutMs: plan.timeoutMs });
        try {
          await producer.send({ topic: plan.topic, key, id, body });
          ledger.confirm(id, started);
          confirmed = true;
        } catch (error) {
          ledger.refuse(id, started, error);
          if (!isMqError(error) || !error.retriable) break;
          await delay(Math.min(1000, 50 * 2 ** attempt));
        }
      }
      if (confirmed && plan.duplicate) {
        const started = ledger.send({ id, key, seq, poison, timeoutMs: plan.timeoutMs });
        await producer.send({ topic: plan.topic, key, id, body }).then(
          () => ledger.confirm(id, started),
          (error: unknown) => ledger.refuse(id, started, error),
        );
      }
      if (plan.paceMs) await delay(plan.paceMs);
    }
  });
  await Promise.all(loops);
}

/**
 * Waits until every confirmed healthy message reached every group and its effect is in the
 * group's store, and every confirmed poison message is in the dead-letter topic; or `timeoutMs`
 * passed (the checker then counts what is missing). Loads the effects into the ledger.
 */
export async function drain(
  ledger: Ledger,
  stores: Stores,
  run: string,
  groups: readonly { group: string; store: EffectStore }[],
  timeoutMs: number,
): Promise<boolean> {
  const reload = async (): Promise<void> => {
    for (const g of groups) ledger.setEffects(g.group, await loadEffects(stores, run, g.group, g.store));
  };
  const done = async (): Promise<boolean> => {
    await reload();
    const byGroup = new Map<string, Set<string>>(groups.map((g) => [g.group, new Set()]));
    for (const d of ledger.deliveries) byGroup.get(d.group ?? 'g')?.add(d.id);
    const dead = new Set(ledger.deadLetters.map((d) => d.id));
    for (const [id] of ledger.confirmed) {
      const sent = ledger.sent.get(id);
      if (sent?.poison) {
        if (!dead.has(id)) return false;
        continue;
      }
      for (const g of groups) {
        if (!byGroup.get(g.group)?.has(id)) return false;
        if (!ledger.effects.get(g.group)?.has(id)) return false;
      }
    }
    return true;
  };
  try {
    await waitFor(done, { timeoutMs, intervalMs: 250 });
    return true;
  } catch {
    return false;
  }
}

const CHILD = fileURLToPath(new URL('./consumer-child.ts', import.meta.url));

/** What a child consumer is told (as JSON in `REL_CHILD`). */
export interface ChildConfig {
  name: string;
  url: string;
  /** `connect` options without the logger (JSON). */
  connectOptions: Record<string, unknown>;
  topic: string;
  group: string;
  store: EffectStore;
  run: string;
  order: 'concurrent' | 'key' | 'partition';
  concurrency: number;
  redisUrl: string;
  pgUrl: string;
  /** SIGKILL itself after the effect of this many deliveries, before acknowledging the last. */
  killAfter?: number;
  delayMs?: number;
}

/**
 * A consumer in a child process, which can be SIGKILLed mid-handler. It reports each delivery
 * on stdout as a line; the parent records them in the ledger.
 */
export class ChildConsumer {
  private readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readyResolve: () => void = () => {};
  readonly ready: Promise<void>;
  /** Set when it killed itself after the effect of this id (before the ack). */
  killedAfter: string | undefined;
  alive = true;
  readonly stderr: string[] = [];

  constructor(
    readonly config: ChildConfig,
    ledger: Ledger,
  ) {
    this.ready = new Promise((resolve) => {
      this.readyResolve = resolve;
    });
    this.child = spawn(process.execPath, ['--import', 'tsx', CHILD], {
      env: { ...process.env, REL_CHILD: JSON.stringify(config) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let buffer = '';
    this.child.stdout?.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      let nl = buffer.indexOf('\n');
      while (nl >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        nl = buffer.indexOf('\n');
        if (line === 'READY') this.readyResolve();
        else if (line.startsWith('D ')) {
          const d = JSON.parse(line.slice(2)) as {
            id: string;
            key: string;
            seq: number;
            attempt: number;
            at: number;
          };
          ledger.deliver({ ...d, consumer: config.name, group: config.group });
        } else if (line.startsWith('K ')) this.killedAfter = line.slice(2);
      }
    });
    this.child.stderr?.on('data', (chunk: Buffer) => {
      this.stderr.push(chunk.toString());
      if (this.stderr.length > 50) this.stderr.shift();
    });
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.alive = false;
        this.readyResolve();
        resolve({ code, signal });
      });
    });
  }

  /** SIGKILL: no clean shutdown. */
  async kill(): Promise<void> {
    if (this.alive) this.child.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM: the child closes its subscription (drains, commits) and exits. */
  async leave(): Promise<void> {
    if (this.alive) this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 30_000);
    await this.exited;
    clearTimeout(timer);
  }
}
