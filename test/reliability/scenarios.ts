import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { type Broker, connect, type Delivery, type Subscription } from '../../src/index.js';
import { createOutbox, ensureOutbox } from '../../src/patterns/index.js';
import { waitFor } from '../../src/testing/index.js';
import type { CheckOptions } from './checker.js';
import type { ProxyMode } from './fault-proxy.js';
import { Ledger } from './ledger.js';
import type { RelayChildConfig } from './relay-child.js';
import type { BrokerName, Target } from './targets.js';
import {
  between,
  ChildConsumer,
  cleanupStores,
  delay,
  drain,
  type EffectStore,
  publish,
  type RelBody,
  recordDelivery,
  relHandler,
  rng,
  type Stores,
} from './workload.js';

/** What a scenario run gets. */
export interface RunEnv {
  target: Target;
  stores: Stores;
  seed: number;
  /** Multiplies the scenario's message count (1 = the full matrix). */
  scale: number;
  log: (line: string) => void;
}

/** What a scenario run leaves: its ledger, how to check it, and scenario-specific counters that must be 0. */
export interface RunOutcome {
  ledger: Ledger;
  check: CheckOptions;
  /** Extra invariants of this scenario (name → count of violations). */
  extra: Record<string, number>;
  notes: string[];
}

export interface Scenario {
  id: string;
  title: string;
  brokers: readonly BrokerName[];
  run(env: RunEnv): Promise<RunOutcome>;
}

const count = (env: RunEnv, n: number): number => Math.max(30, Math.round(n * env.scale));
const PUBLISH_TIMEOUT_MS = 10_000;
const DRAIN_TIMEOUT_MS = 180_000;

/** One run's names, clients and clean-up. */
class RunContext {
  readonly run = `r${randomUUID().slice(0, 8)}`;
  readonly topic = `rel-${this.run}`;
  readonly ledger = new Ledger();
  readonly random: () => number;
  private readonly brokers: Broker[] = [];
  readonly subscriptions: Subscription[] = [];
  readonly children: ChildConsumer[] = [];
  readonly notes: string[] = [];

  constructor(readonly env: RunEnv) {
    this.random = rng(env.seed);
  }

  async connect(path: 'publish' | 'consume'): Promise<Broker> {
    const t = this.env.target;
    const broker = await connect(path === 'publish' ? t.publishUrl : t.consumeUrl, t.connectOptions);
    this.brokers.push(broker);
    return broker;
  }

  async ensureTopic(partitions = 3): Promise<void> {
    const broker = this.brokers[0] ?? (await this.connect('publish'));
    await broker.ensureTopic(this.topic, { partitions });
  }

  /** An in-process consumer of `group` whose effects go to `store`. */
  async subscribe(
    broker: Broker,
    group: string,
    store: EffectStore,
    options: { order?: 'concurrent' | 'key'; concurrency?: number; attempts?: number; delayMs?: number } = {},
  ): Promise<Subscription> {
    const handler = relHandler({
      run: this.run,
      group,
      store,
      redis: this.env.stores.redis,
      pool: this.env.stores.pool,
      delayMs: options.delayMs,
      onDelivery: (d) => recordDelivery(this.ledger, d, 'in-process', group),
    });
    const sub = await broker.subscribe<RelBody>(
      {
        topic: this.topic,
        group,
        order: options.order ?? 'key',
        concurrency: options.concurrency ?? 4,
        retry: { attempts: options.attempts ?? 5, backoff: { initialMs: 20, multiplier: 2, maxMs: 200 } },
        closeTimeoutMs: 5_000,
      },
      handler,
    );
    this.subscriptions.push(sub);
    return sub;
  }

  child(group: string, store: EffectStore, options: Partial<ChildConsumerOptions> = {}): ChildConsumer {
    const t = this.env.target;
    const { logger: _logger, ...connectOptions } = t.connectOptions;
    const child = new ChildConsumer(
      {
        name: `child-${this.children.length}`,
        url: t.consumeUrl,
        connectOptions: connectOptions as Record<string, unknown>,
        topic: this.topic,
        group,
        store,
        run: this.run,
        order: options.order ?? 'key',
        concurrency: options.concurrency ?? 4,
        redisUrl: this.env.stores.redisUrl,
        pgUrl: this.env.stores.pgUrl,
        killAfter: options.killAfter,
        delayMs: options.delayMs,
      },
      this.ledger,
    );
    this.children.push(child);
    return child;
  }

  publishPlan(n: number, extra: Partial<Parameters<typeof publish>[2]> = {}): Parameters<typeof publish>[2] {
    return {
      topic: this.topic,
      run: this.run,
      count: n,
      publishers: 3,
      keysPerPublisher: 8,
      timeoutMs: PUBLISH_TIMEOUT_MS,
      random: this.random,
      ...extra,
    };
  }

  /** Waits until `n` sends are confirmed, or publishing ended. */
  async confirmedAtLeast(n: number, publishing: { done: boolean }): Promise<void> {
    await waitFor(() => this.ledger.confirmedCount >= n || publishing.done, {
      timeoutMs: 600_000,
      intervalMs: 20,
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.children.map((c) => c.kill()));
    for (const s of this.subscriptions) await s.close({ timeoutMs: 1000 }).catch(() => {});
    for (const b of this.brokers) await b.close().catch(() => {});
    await cleanupStores(this.env.stores, this.run);
  }
}

interface ChildConsumerOptions {
  order: 'concurrent' | 'key';
  concurrency: number;
  killAfter: number;
  delayMs: number;
}

function tracked(promise: Promise<void>): { done: boolean; promise: Promise<void> } {
  const state = { done: false, promise };
  state.promise = promise.finally(() => {
    state.done = true;
  });
  return state;
}

/** Every node up and every proxy passing, before a run starts. */
async function healthy(target: Target): Promise<void> {
  for (const p of [...target.proxies.publish, ...target.proxies.consume]) p.setMode('pass');
  await target.heal();
}

async function outcome(
  ctx: RunContext,
  check: CheckOptions,
  extra: Record<string, number> = {},
): Promise<RunOutcome> {
  return { ledger: ctx.ledger, check, extra, notes: ctx.notes };
}

function countCodes(ledger: Ledger): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of ledger.refused) out[r.code] = (out[r.code] ?? 0) + 1;
  return out;
}

/** Runs `body` with a fresh context, closing it whatever happens. */
async function withContext(env: RunEnv, body: (ctx: RunContext) => Promise<RunOutcome>): Promise<RunOutcome> {
  await healthy(env.target);
  const ctx = new RunContext(env);
  try {
    return await body(ctx);
  } finally {
    await ctx.close();
  }
}

/** Restarts a node: kill -9 or a clean stop (the seed picks), then start; recorded as a fault. */
async function restartNode(ctx: RunContext, label: string): Promise<void> {
  const t = ctx.env.target;
  const node = t.nodes > 1 ? between(ctx.random, 0, t.nodes - 1) : 0;
  const how = t.cleanStop && ctx.random() < 0.5 ? 'stop' : 'kill -9';
  const start = Date.now();
  ctx.env.log(`  ${label}: ${how} node ${node}`);
  if (how === 'kill -9') await t.kill(node);
  else await t.stop(node);
  await t.start(node);
  ctx.ledger.fault(`${label}: ${how} + start node ${node}`, start, Date.now());
}

const s1: Scenario = {
  id: 'restart',
  title: '1. broker restart at 1/3 and 1/2 of the messages, 3 publishers',
  brokers: ['rabbitmq', 'kafka', 'kafka3'],
  run: (env) =>
    withContext(env, async (ctx) => {
      const n = count(env, 10_000);
      await ctx.ensureTopic();
      const consumer = await ctx.connect('consume');
      await ctx.subscribe(consumer, 'g', 'redis', { order: 'key' });
      const producer = (await ctx.connect('publish')).producer({ timeoutMs: PUBLISH_TIMEOUT_MS });
      const publishing = tracked(publish(ctx.ledger, producer, ctx.publishPlan(n)));
      await ctx.confirmedAtLeast(Math.floor(n / 3), publishing);
      await restartNode(ctx, 'at 1/3');
      await ctx.confirmedAtLeast(Math.floor(n / 2), publishing);
      await restartNode(ctx, 'at 1/2');
      await publishing.promise;
      await drain(ctx.ledger, env.stores, ctx.run, [{ group: 'g', store: 'redis' }], DRAIN_TIMEOUT_MS);
      return outcome(ctx, { ordered: true });
    }),
};

const s2: Scenario = {
  id: 'leader-kill',
  title: '2. partition leader killed mid-stream (acks all, RF 3, min ISR 2)',
  brokers: ['kafka3'],
  run: (env) =>
    withContext(env, async (ctx) => {
      const n = count(env, 3_000);
      const t = env.target;
      await ctx.ensureTopic(3);
      const consumer = await ctx.connect('consume');
      await ctx.subscribe(consumer, 'g', 'redis', { order: 'key' });
      const producer = (await ctx.connect('publish')).producer({
        acks: 'all',
        timeoutMs: PUBLISH_TIMEOUT_MS,
      });
      const publishing = tracked(publish(ctx.ledger, producer, ctx.publishPlan(n)));
      const killed: number[] = [];
      let stalled = 0;
      for (const at of [between(ctx.random, 15, 35) / 100, between(ctx.random, 55, 75) / 100]) {
        await ctx.confirmedAtLeast(Math.floor(n * at), publishing);
        const partition = between(ctx.random, 0, 2);
        const leader = await (t.leaderOf as NonNullable<Target['leaderOf']>)(ctx.topic, partition);
        const start = Date.now();
        env.log(`  at ${Math.round(at * 100)}%: kill -9 node ${leader}, leader of partition ${partition}`);
        await t.kill(leader);
        killed.push(leader);
        // Failover is the cluster's job: recovery counts from the kill, the node stays down.
        ctx.ledger.fault(`kill -9 leader of p${partition} (node ${leader})`, start, start);
        const before = ctx.ledger.confirmedCount;
        // Two of three nodes are up: publishing must go on without the killed one.
        try {
          await waitFor(() => ctx.ledger.confirmedCount >= before + Math.floor(n / 10) || publishing.done, {
            timeoutMs: 120_000,
            intervalMs: 20,
          });
        } catch {
          stalled++;
          ctx.notes.push(
            `no progress with node ${leader} down: ${ctx.ledger.confirmedCount - before} confirmed in 120 s after the kill, ${ctx.ledger.refused.length} refusals so far (${JSON.stringify(countCodes(ctx.ledger))})`,
          );
        }
        await t.start(leader);
      }
      await publishing.promise;
      await drain(ctx.ledger, env.stores, ctx.run, [{ group: 'g', store: 'redis' }], DRAIN_TIMEOUT_MS);
      ctx.notes.push(`killed leaders: nodes ${killed.join(', ')}`);
      return outcome(ctx, { ordered: true }, { noProgressWithNodeDown: stalled });
    }),
};

const s3: Scenario = {
  id: 'consumer-kill',
  title: '3. consumer SIGKILLed after its effect, before its ack (Redis and PostgreSQL stores)',
  brokers: ['rabbitmq', 'kafka', 'kafka3'],
  run: (env) =>
    withContext(env, async (ctx) => {
      const n = count(env, 1_000);
      await ctx.ensureTopic();
      const groups = [
        { group: 'g-redis', store: 'redis' as const },
        { group: 'g-pg', store: 'pg' as const },
      ];
      const kills = 3;
      const killedIds: { group: string; id: string }[] = [];
      // Each group: a child consumer that kills itself after the k-th effect; replaced until
      // `kills` kills happened, then one that runs to the end.
      const supervise = async (group: string, store: EffectStore, done: () => boolean): Promise<void> => {
        for (let k = 0; !done(); k++) {
          const killAfter = k < kills ? between(ctx.random, 5, Math.max(6, Math.floor(n / 8))) : undefined;
          // Redis (a lease, then a done marker: not atomic with the effect, as documented) runs one
          // handler at a time, so the kill lands exactly after an effect and before its ack. PostgreSQL
          // (effect and ledger row in one transaction) runs 4: the kill also hits handlers mid-effect.
          const child = ctx.child(group, store, {
            order: 'concurrent',
            concurrency: store === 'redis' ? 1 : 4,
            killAfter,
          });
          await child.ready;
          const exited = await Promise.race([
            child.exited,
            waitFor(done, { timeoutMs: 600_000, intervalMs: 100 }),
          ]);
          if (exited === true) {
            await child.leave();
            return;
          }
          if (child.killedAfter !== undefined) {
            killedIds.push({ group, id: child.killedAfter });
            const at = Date.now();
            ctx.ledger.fault(`${group}: consumer SIGKILLed after effect of ${child.killedAfter}`, at, at);
          } else {
            ctx.notes.push(`${group}: child exited unexpectedly: ${child.stderr.join('').slice(-300)}`);
          }
        }
      };
      let finished = false;
      const supervisors = groups.map((g) => supervise(g.group, g.store, () => finished));
      // Both groups' queues must exist before publishing (RabbitMQ keeps only what comes after).
      await waitFor(() => ctx.children.filter((c) => c.alive).length >= 2, { timeoutMs: 120_000 });
      await Promise.all(ctx.children.map((c) => c.ready));
      const producer = (await ctx.connect('publish')).producer({ timeoutMs: PUBLISH_TIMEOUT_MS });
      await publish(ctx.ledger, producer, ctx.publishPlan(n));
      await drain(ctx.ledger, env.stores, ctx.run, groups, DRAIN_TIMEOUT_MS);
      finished = true;
      await Promise.all(supervisors);
      // The message whose ack the kill prevented must have come back (and been absorbed).
      const notRedelivered = killedIds.filter(
        (k) => ctx.ledger.deliveries.filter((d) => d.group === k.group && d.id === k.id).length < 2,
      ).length;
      ctx.notes.push(`${killedIds.length} consumer kills`);
      return outcome(
        ctx,
        { ordered: false },
        { notRedelivered, kills: killedIds.length === 2 * kills ? 0 : 1 },
      );
    }),
};

const s4: Scenario = {
  id: 'poison',
  title: '4. poison messages (1% always fail) dead-lettered after exactly 3 attempts, the rest flow',
  brokers: ['memory', 'rabbitmq', 'kafka', 'kafka3'],
  run: (env) =>
    withContext(env, async (ctx) => {
      const n = count(env, 2_000);
      const attempts = 3;
      ctx.ledger.expectedAttempts = attempts;
      await ctx.ensureTopic();
      const poison = new Set<number>();
      while (poison.size < Math.max(1, Math.round(n / 100))) poison.add(between(ctx.random, 0, n - 1));
      const consumer = await ctx.connect('consume');
      // The dead-letter topic's reader first: RabbitMQ keeps only what arrives after a queue exists.
      const dlq = await consumer.subscribe<RelBody>(
        { topic: `${ctx.topic}.g.dlq`, group: 'dlq', concurrency: 4 },
        (d: Delivery<RelBody>) => {
          ctx.ledger.deadLetter(d.id, d.deadLetter?.attempts ?? -1);
        },
      );
      ctx.subscriptions.push(dlq);
      await ctx.subscribe(consumer, 'g', 'redis', { order: 'key', attempts });
      const producer = (await ctx.connect('publish')).producer({ timeoutMs: PUBLISH_TIMEOUT_MS });
      await publish(ctx.ledger, producer, ctx.publishPlan(n, { poison }));
      await drain(ctx.ledger, env.stores, ctx.run, [{ group: 'g', store: 'redis' }], DRAIN_TIMEOUT_MS);
      ctx.notes.push(`${poison.size} poison`);
      return outcome(ctx, { ordered: true });
    }),
};

const FAULT_KINDS = [
  'cut',
  'refuse',
  'stall',
  'latency',
  'drop-client-to-server',
  'drop-server-to-client',
] as const;

const s5: Scenario = {
  id: 'network',
  title: '5. connections cut, refused, stalled, slowed, dropped one way: on the publish and the consume path',
  brokers: ['rabbitmq', 'kafka', 'kafka3'],
  run: (env) =>
    withContext(env, async (ctx) => {
      const t = env.target;
      await ctx.ensureTopic();
      const consumer = await ctx.connect('consume');
      await ctx.subscribe(consumer, 'g', 'redis', { order: 'key' });
      const producer = (await ctx.connect('publish')).producer({ timeoutMs: PUBLISH_TIMEOUT_MS });
      let stop = false;
      const publishing = tracked(
        publish(
          ctx.ledger,
          producer,
          ctx.publishPlan(Number.POSITIVE_INFINITY, { paceMs: 20, stop: () => stop }),
        ),
      );
      await ctx.confirmedAtLeast(50, publishing);
      const kinds = [...FAULT_KINDS];
      for (let i = kinds.length - 1; i > 0; i--) {
        const j = between(ctx.random, 0, i);
        [kinds[i], kinds[j]] = [kinds[j] as (typeof kinds)[number], kinds[i] as (typeof kinds)[number]];
      }
      for (const [i, kind] of kinds.entries()) {
        // Each seed puts every kind of fault on one path, alternating, so seeds cover both.
        const path = (i + env.seed) % 2 === 0 ? 'publish' : 'consume';
        const proxies = t.proxies[path];
        const ms = between(ctx.random, 1000, 3000);
        env.log(`  ${kind} on the ${path} path for ${ms} ms`);
        const start = Date.now();
        if (kind === 'cut') for (const p of proxies) p.cut();
        else {
          const mode: ProxyMode = kind;
          if (kind === 'refuse') for (const p of proxies) p.cut();
          for (const p of proxies) p.setMode(mode, 300);
          await delay(ms);
          for (const p of proxies) p.setMode('pass');
        }
        const end = Date.now();
        ctx.ledger.fault(`${kind} (${path})`, start, end);
        // The next fault only after this one is recovered from (or clearly not).
        await waitFor(
          () =>
            [...ctx.ledger.confirmed.values()].some((c) => c.at >= end) &&
            ctx.ledger.deliveries.some((d) => d.at >= end),
          { timeoutMs: 60_000, intervalMs: 50 },
        ).catch(() => ctx.notes.push(`no recovery within 60 s after ${kind} (${path})`));
      }
      stop = true;
      await publishing.promise;
      await drain(ctx.ledger, env.stores, ctx.run, [{ group: 'g', store: 'redis' }], DRAIN_TIMEOUT_MS);
      // Proof that the clients really go through the proxies (for Kafka: that metadata pointed
      // them there): while the publish path is stalled or black-holed towards the broker, no send
      // started after the fault began can be confirmed before it ends.
      let confirmedThroughFault = 0;
      for (const f of ctx.ledger.faults) {
        if (!/^(stall|drop-client-to-server) \(publish\)/.test(f.name)) continue;
        for (const c of ctx.ledger.confirmed.values())
          if (c.at - c.ms > f.start && c.at < f.end) confirmedThroughFault++;
      }
      return outcome(ctx, { ordered: true }, { confirmedThroughFault });
    }),
};

/** A member of a group that can join, leave cleanly or be killed: a child process, or (memory) a subscription. */
interface Member {
  ready: Promise<void>;
  readonly alive: boolean;
  leave(): Promise<void>;
  kill(): Promise<void>;
}

async function member(
  ctx: RunContext,
  group: string,
  options: { order: 'concurrent' | 'key'; store: EffectStore; delayMs?: number; concurrency?: number },
): Promise<Member> {
  if (ctx.env.target.name !== 'memory') {
    const child = ctx.child(group, options.store, {
      order: options.order,
      concurrency: options.concurrency ?? 2,
      delayMs: options.delayMs,
    });
    await child.ready;
    return child;
  }
  // The embedded broker lives in this process: a member is a subscription on its own connection,
  // and a "kill" abandons its handlers in flight (close with no drain time).
  const broker = await ctx.connect('consume');
  const sub = await ctx.subscribe(broker, group, options.store, {
    order: options.order,
    concurrency: options.concurrency ?? 2,
    delayMs: options.delayMs,
  });
  let alive = true;
  return {
    ready: Promise.resolve(),
    get alive() {
      return alive;
    },
    leave: async () => {
      alive = false;
      await sub.close();
    },
    kill: async () => {
      alive = false;
      await sub.close({ timeoutMs: 0 });
    },
  };
}

/** Joins, leaves and (with `kills`) kills members while `until` is false. */
async function churn(
  ctx: RunContext,
  group: string,
  options: {
    order: 'concurrent' | 'key';
    store: EffectStore;
    delayMs?: number;
    kills: boolean;
    expected: number;
  },
  until: () => boolean,
): Promise<number> {
  let changes = 0;
  const members: Member[] = [await member(ctx, group, options)];
  const actions = options.kills ? ['join', 'leave', 'kill', 'join'] : ['join', 'join', 'leave', 'join'];
  for (let step = 0; !until(); step++) {
    const delivered = ctx.ledger.deliveries.length;
    // The next change after a seeded number of further deliveries (the group makes progress between changes).
    const gap = between(
      ctx.random,
      Math.max(5, Math.floor(options.expected / 12)),
      Math.max(10, Math.floor(options.expected / 6)),
    );
    await waitFor(() => until() || ctx.ledger.deliveries.length >= delivered + gap, {
      timeoutMs: 120_000,
      intervalMs: 20,
    }).catch(() => {});
    if (until()) break;
    const live = members.filter((m) => m.alive);
    let action = actions[step % actions.length] as string;
    if (live.length <= 1 && action !== 'join') action = 'join';
    if (live.length >= 3) action = options.kills && step % 2 === 0 ? 'kill' : 'leave';
    const start = Date.now();
    if (action === 'join') members.push(await member(ctx, group, options));
    else {
      const victim = live[between(ctx.random, 0, live.length - 1)] as Member;
      if (action === 'kill') await victim.kill();
      else await victim.leave();
      if (members.filter((m) => m.alive).length === 0) members.push(await member(ctx, group, options));
    }
    ctx.ledger.fault(`member ${action}`, start, Date.now());
    changes++;
    ctx.env.log(`  member ${action} (${members.filter((m) => m.alive).length} live)`);
  }
  for (const m of members) if (m.alive) await m.leave();
  return changes;
}

const s6: Scenario = {
  id: 'slow-churn',
  title: '6. slow consumers work off a backlog while members join and leave',
  brokers: ['memory', 'rabbitmq', 'kafka', 'kafka3'],
  run: (env) =>
    withContext(env, async (ctx) => {
      const n = count(env, 2_000);
      await ctx.ensureTopic();
      // Declare the group (RabbitMQ keeps only what arrives after its queue exists), then leave it idle.
      const first = await member(ctx, 'g', { order: 'concurrent', store: 'redis', delayMs: 20 });
      await first.leave();
      const producer = (await ctx.connect('publish')).producer({ timeoutMs: PUBLISH_TIMEOUT_MS });
      await publish(ctx.ledger, producer, ctx.publishPlan(n));
      let drained = false;
      const churning = churn(
        ctx,
        'g',
        { order: 'concurrent', store: 'redis', delayMs: 20, kills: false, expected: n },
        () => drained,
      );
      await drain(ctx.ledger, env.stores, ctx.run, [{ group: 'g', store: 'redis' }], DRAIN_TIMEOUT_MS * 2);
      drained = true;
      const changes = await churning;
      // Without membership changes during the run, the scenario proved nothing.
      return outcome(ctx, { ordered: false }, { tooFewMembershipChanges: changes < 2 ? 1 : 0 });
    }),
};

const s7: Scenario = {
  id: 'duplicates',
  title: '7. every message delivered twice (duplicates injected): effects once (Redis and PostgreSQL)',
  brokers: ['memory', 'rabbitmq', 'kafka', 'kafka3'],
  run: (env) =>
    withContext(env, async (ctx) => {
      const n = count(env, 2_000);
      await ctx.ensureTopic();
      const consumer = await ctx.connect('consume');
      const groups = [
        { group: 'g-redis', store: 'redis' as const },
        { group: 'g-pg', store: 'pg' as const },
      ];
      for (const g of groups) await ctx.subscribe(consumer, g.group, g.store, { order: 'key' });
      const producer = (await ctx.connect('publish')).producer({ timeoutMs: PUBLISH_TIMEOUT_MS });
      await publish(ctx.ledger, producer, ctx.publishPlan(n, { duplicate: true }));
      await drain(ctx.ledger, env.stores, ctx.run, groups, DRAIN_TIMEOUT_MS);
      // Both copies must have arrived, or the scenario proved nothing.
      await waitFor(() => ctx.ledger.deliveries.length >= 2 * 2 * ctx.ledger.confirmedCount, {
        timeoutMs: 60_000,
      }).catch(() => {});
      const copies = ctx.ledger.deliveries.length;
      const missingCopies = Math.max(0, 2 * 2 * ctx.ledger.confirmedCount - copies);
      return outcome(ctx, { ordered: true }, { missingCopies });
    }),
};

const s8: Scenario = {
  id: 'ordered-churn',
  title: '8. key-ordered consumption while consumers join, leave and are killed',
  brokers: ['memory', 'rabbitmq', 'kafka', 'kafka3'],
  run: (env) =>
    withContext(env, async (ctx) => {
      const n = count(env, 2_000);
      await ctx.ensureTopic();
      let finished = false;
      const producer = (await ctx.connect('publish')).producer({ timeoutMs: PUBLISH_TIMEOUT_MS });
      // The first member declares the group before anything is sent.
      // Members are SIGKILLed at any point of a handler, also between an effect and its record:
      // only PostgreSQL's transactional() keeps the effect single then (a lease store cannot; see
      // scenario 3 and the README on idempotent consumers).
      const churning = churn(
        ctx,
        'g',
        { order: 'key', store: 'pg', kills: true, expected: n },
        () => finished,
      );
      await waitFor(() => ctx.children.some((c) => c.alive) || ctx.subscriptions.length > 0, {
        timeoutMs: 120_000,
      });
      await Promise.all(ctx.children.map((c) => c.ready));
      // Paced, so that members come and go while messages are still being sent.
      await publish(ctx.ledger, producer, ctx.publishPlan(n, { paceMs: 20 }));
      await drain(ctx.ledger, env.stores, ctx.run, [{ group: 'g', store: 'pg' }], DRAIN_TIMEOUT_MS);
      finished = true;
      const changes = await churning;
      return outcome(ctx, { ordered: true }, { tooFewMembershipChanges: changes < 2 ? 1 : 0 });
    }),
};

const RELAY_CHILD = fileURLToPath(new URL('./relay-child.ts', import.meta.url));

/** An outbox relay in a child process (relay-child.ts), which can be SIGKILLed mid-stream. */
class ChildRelay {
  private readonly child: ChildProcess;
  readonly ready: Promise<void>;
  readonly exited: Promise<void>;
  alive = true;
  readonly stderr: string[] = [];

  constructor(config: RelayChildConfig, failed: Set<string>) {
    this.child = spawn(process.execPath, ['--import', 'tsx', RELAY_CHILD], {
      env: { ...process.env, REL_RELAY: JSON.stringify(config) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let isReady = false;
    let readyResolve: () => void = () => {};
    let readyReject: (e: Error) => void = () => {};
    this.ready = new Promise((resolve, reject) => {
      readyResolve = resolve;
      readyReject = reject;
    });
    let buffer = '';
    this.child.stdout?.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (line === 'READY') {
          isReady = true;
          readyResolve();
        } else if (line.startsWith('F ')) failed.add(line.slice(2));
      }
    });
    this.child.stderr?.on('data', (chunk: Buffer) => {
      this.stderr.push(chunk.toString());
      if (this.stderr.length > 50) this.stderr.shift();
    });
    this.exited = new Promise((resolve) => {
      this.child.once('exit', () => {
        this.alive = false;
        if (!isReady)
          readyReject(
            new Error(`relay ${config.relayId} exited before READY: ${this.stderr.join('').slice(-500)}`),
          );
        resolve();
      });
    });
    this.ready.catch(() => {});
  }

  /** SIGKILL: whatever it published and did not mark yet stays pending, to be published again. */
  async kill(): Promise<void> {
    if (this.alive) this.child.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM: the relay finishes its batch, marks it and closes. */
  async leave(): Promise<void> {
    if (this.alive) this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 30_000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** Business rows written with the outbox rows, in the same transactions. */
const ORDERS_TABLE = 'mqkit_rel_orders';

/**
 * Writers commit business rows together with outbox rows, 1 to 3 per transaction; about one
 * transaction in ten is rolled back on purpose (seeded; at least one). A committed row is
 * "sent and confirmed" in the ledger (the commit is the producer's confirm), a rolled-back one
 * is never sent: its delivery would be `unexpected`. Each writer owns its keys and writes them
 * one transaction after another, so insertion order per key is the ledger's `seq`.
 */
async function writeOutbox(
  ctx: RunContext,
  table: string,
  n: number,
  rolledBack: Set<string>,
  paceMs: number,
): Promise<void> {
  const outbox = createOutbox({ table });
  const pool = ctx.env.stores.pool;
  let next = 0;
  const writers = Array.from({ length: 3 }, async (_, w) => {
    const seqs = new Map<string, number>();
    for (let txs = 0; next < n; txs++) {
      const size = Math.min(between(ctx.random, 1, 3), n - next);
      const first = next;
      next += size;
      const rollback = ctx.random() < 0.1 || (w === 0 && txs === 2);
      const messages = Array.from({ length: size }, (_, j) => {
        const key = `w${w}k${Math.floor(ctx.random() * 8)}`;
        const seq = (seqs.get(key) ?? 0) + 1;
        seqs.set(key, seq);
        const id = `${ctx.run}-${first + j}`;
        const body: RelBody = { key, seq, poison: false };
        return { topic: ctx.topic, key, id, body };
      });
      const started = Date.now();
      if (!rollback)
        for (const m of messages)
          ctx.ledger.send({
            id: m.id,
            key: m.key,
            seq: m.body.seq,
            poison: false,
            timeoutMs: PUBLISH_TIMEOUT_MS,
            at: started,
          });
      const tx = await pool.connect();
      try {
        await tx.query('BEGIN');
        for (const m of messages)
          await tx.query(`INSERT INTO ${ORDERS_TABLE} (run, id) VALUES ($1, $2)`, [ctx.run, m.id]);
        await outbox.addBatch(tx, messages);
        await tx.query(rollback ? 'ROLLBACK' : 'COMMIT');
      } catch (error) {
        await tx.query('ROLLBACK').catch(() => {});
        throw error;
      } finally {
        tx.release();
      }
      if (rollback) for (const m of messages) rolledBack.add(m.id);
      else for (const m of messages) ctx.ledger.confirm(m.id, started);
      if (paceMs) await delay(paceMs);
    }
  });
  await Promise.all(writers);
}

/** Per group and key, first deliveries whose seq is not above the previous one's: which, and whether the overtaken row had failed to publish. */
function orderDetails(ledger: Ledger, failed: ReadonlySet<string>): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  const last = new Map<string, { seq: number; id: string }>();
  const byKeySeq = new Map<string, string>();
  for (const [id, s] of ledger.sent) byKeySeq.set(`${s.key}\u0000${s.seq}`, id);
  for (const d of [...ledger.deliveries].sort((a, b) => a.at - b.at)) {
    const g = d.group ?? 'g';
    if (seen.has(`${g}\u0000${d.id}`) || d.key === undefined || d.seq === undefined) continue;
    seen.add(`${g}\u0000${d.id}`);
    const k = `${g}\u0000${d.key}`;
    const prev = last.get(k);
    if (prev !== undefined && d.seq <= prev.seq) {
      if (out.length < 10)
        out.push(
          `${g} key ${d.key}: seq ${d.seq} (${d.id}${failed.has(d.id) ? ', had failed to publish' : ''}) first delivered after seq ${prev.seq} (${prev.id}${failed.has(prev.id) ? ', had failed to publish' : ''})`,
        );
    } else last.set(k, { seq: d.seq, id: d.id });
  }
  return out;
}

const s9: Scenario = {
  id: 'outbox',
  title:
    '9. transactional outbox: writers commit (some roll back), relays in child processes SIGKILLed and restarted, the broker restarted once',
  // Not memory: the relays run in child processes, and the embedded broker lives in this one.
  brokers: ['rabbitmq', 'kafka', 'kafka3'],
  run: (env) =>
    withContext(env, async (ctx) => {
      // At least 300: relays publish 50 rows a batch, and the three faults must fall mid-stream.
      const n = Math.max(300, count(env, 3_000));
      const pool = env.stores.pool;
      const table = `rel_ob_${ctx.run}`;
      const relays: ChildRelay[] = [];
      try {
        await pool.query(`CREATE TABLE IF NOT EXISTS ${ORDERS_TABLE} (run text NOT NULL, id text NOT NULL)`);
        await ensureOutbox(pool, { table, slots: 16 });
        await ctx.ensureTopic();
        const groups = [
          { group: 'g-redis', store: 'redis' as const },
          { group: 'g-pg', store: 'pg' as const },
        ];
        // Consumers first (RabbitMQ keeps only what arrives after a queue exists).
        const consumer = await ctx.connect('consume');
        for (const g of groups) await ctx.subscribe(consumer, g.group, g.store, { order: 'key' });
        const failed = new Set<string>();
        const { logger: _logger, ...connectOptions } = env.target.connectOptions;
        const relayConfig = (relayId: string): RelayChildConfig => ({
          relayId,
          url: env.target.publishUrl,
          connectOptions: connectOptions as Record<string, unknown>,
          pgUrl: env.stores.pgUrl,
          table,
          publishTimeoutMs: PUBLISH_TIMEOUT_MS,
        });
        const relayIds = [`${ctx.run}-relay-0`, `${ctx.run}-relay-1`];
        for (const id of relayIds) relays.push(new ChildRelay(relayConfig(id), failed));
        await Promise.all(relays.map((r) => r.ready));

        const rolledBack = new Set<string>();
        const writing = tracked(writeOutbox(ctx, table, n, rolledBack, 20));
        // Faults by relayed progress (distinct ids the PostgreSQL group got), as fractions of
        // a floor under the committed count (about 9 in 10 transactions commit).
        const relayed = (): number =>
          new Set(ctx.ledger.deliveries.filter((d) => d.group === 'g-pg').map((d) => d.id)).size;
        const plan = [
          { at: between(ctx.random, 15, 30) / 100, fault: 'relay' as const },
          { at: between(ctx.random, 35, 55) / 100, fault: 'broker' as const },
          { at: between(ctx.random, 60, 75) / 100, fault: 'relay' as const },
        ];
        let relayKills = 0;
        let missedFaults = 0;
        for (const step of plan) {
          const target = Math.floor(step.at * n * 0.8);
          try {
            await waitFor(() => relayed() >= target, { timeoutMs: 120_000, intervalMs: 50 });
          } catch {
            missedFaults++;
            ctx.notes.push(`${relayed()} relayed, ${target} awaited for the ${step.fault} fault: skipped`);
            continue;
          }
          if (step.fault === 'broker') {
            await restartNode(ctx, `broker restart at ${Math.round(step.at * 100)}%`);
            continue;
          }
          const i = between(ctx.random, 0, relays.length - 1);
          const start = Date.now();
          env.log(`  at ${Math.round(step.at * 100)}% relayed: SIGKILL relay ${i}, restart it`);
          await (relays[i] as ChildRelay).kill();
          const restarted = new ChildRelay(relayConfig(relayIds[i] as string), failed);
          relays[i] = restarted;
          await restarted.ready;
          relayKills++;
          ctx.ledger.fault(`relay ${i} SIGKILLed + restarted`, start, Date.now());
        }
        await writing.promise;
        await drain(ctx.ledger, env.stores, ctx.run, groups, DRAIN_TIMEOUT_MS);

        // Every row relayed and deleted: nothing pending, nothing parked.
        const left = async (): Promise<number> =>
          (await pool.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n as number;
        await waitFor(async () => (await left()) === 0, { timeoutMs: 30_000, intervalMs: 250 }).catch(
          () => {},
        );
        const outboxRowsLeft = await left();
        // The business rows are exactly the committed messages' (the rolled-back ones went with their rows).
        const { rows } = await pool.query(`SELECT id FROM ${ORDERS_TABLE} WHERE run = $1`, [ctx.run]);
        const business = new Set(rows.map((r) => r.id as string));
        let businessRowMismatches = 0;
        for (const id of ctx.ledger.confirmed.keys()) if (!business.has(id)) businessRowMismatches++;
        for (const id of business) if (!ctx.ledger.confirmed.has(id)) businessRowMismatches++;
        const rolledBackDelivered = new Set(
          ctx.ledger.deliveries.filter((d) => rolledBack.has(d.id)).map((d) => d.id),
        ).size;
        const summary = `${ctx.ledger.confirmedCount} committed, ${rolledBack.size} rolled back (never sent), ${relayKills} relay kills, ${failed.size} rows failed to publish at least once`;
        env.log(`  ${summary}`);
        ctx.notes.push(summary);
        ctx.notes.push(...orderDetails(ctx.ledger, failed));
        for (const r of relays)
          if (!r.alive) ctx.notes.push(`relay exited: ${r.stderr.join('').slice(-300)}`);
        return outcome(
          ctx,
          { ordered: true },
          {
            rolledBackDelivered,
            noRollbacks: rolledBack.size === 0 ? 1 : 0,
            outboxRowsLeft,
            businessRowMismatches,
            missedFaults,
            deadRelays: relays.filter((r) => !r.alive).length,
          },
        );
      } finally {
        await Promise.all(relays.map((r) => r.kill()));
        await pool.query(`DROP TABLE IF EXISTS ${table}, ${table}_meta, ${table}_relays`).catch(() => {});
        await pool.query(`DROP FUNCTION IF EXISTS ${table}_notify()`).catch(() => {});
        await pool.query(`DELETE FROM ${ORDERS_TABLE} WHERE run = $1`, [ctx.run]).catch(() => {});
      }
    }),
};

export const SCENARIOS: readonly Scenario[] = [s1, s2, s3, s4, s5, s6, s7, s8, s9];
