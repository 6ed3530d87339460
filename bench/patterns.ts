import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { benchBroker, benchDefaults, formatResults } from '../src/cli/bench.js';
import { connect, type Delivery } from '../src/index.js';
import {
  ensureLedger,
  type IdempotencyStore,
  idempotent,
  MemoryIdempotencyStore,
  RedisIdempotencyStore,
  transactional,
} from '../src/patterns/index.js';
import { testDelivery } from '../src/testing/index.js';

/**
 * Figures for the patterns:
 *   npx tsx bench/patterns.ts --url <broker url> [--messages 20000]   order modes on one broker
 *   npx tsx bench/patterns.ts --stores [--messages 20000]              idempotency store cost
 * Order modes: 200 keys, 6 partitions, concurrency 16, a 1 ms timer per message in the handler.
 */
const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    stores: { type: 'boolean' },
    messages: { type: 'string' },
    redis: { type: 'string' },
    pg: { type: 'string' },
  },
});
const messages = Number(values.messages ?? 20_000);
const delivery = (id: string) => testDelivery({ id });

if (values.stores) await storeCosts();
else await orderModes(values.url ?? process.env.MQ_URL ?? 'memory://');

async function orderModes(url: string): Promise<void> {
  const broker = await connect(url);
  const results = [];
  for (const order of ['concurrent', 'key', 'partition'] as const) {
    results.push(
      await benchBroker(broker, {
        ...benchDefaults,
        label: `${broker.kind} order=${order}`,
        messages,
        partitions: 6,
        keys: 200,
        order,
        handlerMs: 1,
      }),
    );
  }
  await broker.close();
  process.stdout.write(`${formatResults(results)}\n`);
}

async function storeCosts(): Promise<void> {
  const redis = new Redis(values.redis ?? process.env.MQKIT_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379', {
    enableAutoPipelining: true,
  });
  const pool = new pg.Pool({
    connectionString:
      values.pg ?? process.env.MQKIT_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    max: 16,
  });
  const table = `mqkit_bench_${Date.now().toString(36)}`;
  await ensureLedger(pool, table);
  const redisCommands = async () =>
    Number(/total_commands_processed:(\d+)/.exec(await redis.info('stats'))?.[1]);
  const rows: string[] = ['store       concurrency  µs/message      msg/s  round trips  server commands'];
  const run = async (
    name: string,
    handler: (d: Delivery<unknown>) => Promise<void> | void,
    concurrency: number,
  ) => {
    const before = name === 'redis' ? await redisCommands() : 0;
    let next = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < messages) await handler(delivery(`${name}-${concurrency}-${next++}`));
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    // Round trips by design: Redis claim (EVAL) + complete (SET); PostgreSQL BEGIN, INSERT, COMMIT.
    const trips = { memory: 0, redis: 2, postgres: 3 }[name] ?? 0;
    const commands = name === 'redis' ? ((await redisCommands()) - before - 1) / messages : trips;
    rows.push(
      `${name.padEnd(11)} ${String(concurrency).padStart(11)}  ${((seconds * 1e6) / messages).toFixed(1).padStart(10)}  ${Math.round(
        messages / seconds,
      )
        .toString()
        .padStart(9)}  ${String(trips).padStart(11)}  ${commands.toFixed(2).padStart(15)}`,
    );
  };
  const stores: [string, IdempotencyStore][] = [
    ['memory', new MemoryIdempotencyStore()],
    ['redis', new RedisIdempotencyStore(redis, `bench-${Date.now()}:`)],
  ];
  for (const concurrency of [1, 16]) {
    for (const [name, store] of stores)
      await run(
        name,
        idempotent(() => {}, { store }),
        concurrency,
      );
    await run(
      'postgres',
      transactional(async () => {}, { pool, table }),
      concurrency,
    );
  }
  await pool.query(`DROP TABLE ${table}`);
  await pool.end();
  redis.disconnect();
  process.stdout.write(`${rows.join('\n')}\n`);
  process.stdout.write(
    'Redis server commands are counted by the server (EVAL and the SET inside it, then SET done);\n',
  );
  process.stdout.write(
    'with auto-pipelining, concurrent handlers share network round trips. PostgreSQL: 3 statements\n',
  );
  process.stdout.write("per message plus the handler's own, in one transaction on a pooled connection.\n");
}
