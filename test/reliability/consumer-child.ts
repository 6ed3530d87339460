/**
 * A reliability consumer run as its own process (see `ChildConsumer` in workload.ts), so it can
 * be SIGKILLed mid-handler. Config comes as JSON in `REL_CHILD`. Writes `D <json>` for each
 * delivery, `K <id>` just before it SIGKILLs itself (after that message's effect, before its
 * ack), `READY` once subscribed. On SIGTERM it closes the subscription cleanly and exits 0.
 */
import { Redis } from 'ioredis';
import pg from 'pg';
import { connect } from '../../src/index.js';
import type { ChildConfig, RelBody } from './workload.js';
import { relHandler } from './workload.js';

const config = JSON.parse(process.env.REL_CHILD ?? '{}') as ChildConfig;
const write = (line: string) => process.stdout.write(`${line}\n`);
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

const redis =
  config.store === 'redis'
    ? new Redis(config.redisUrl, { enableAutoPipelining: true, lazyConnect: true })
    : undefined;
await redis?.connect();
const pool = config.store === 'pg' ? new pg.Pool({ connectionString: config.pgUrl, max: 4 }) : undefined;
const broker = await connect(config.url, { ...config.connectOptions, logger: quiet });

let effects = 0;
const handler = relHandler({
  run: config.run,
  group: config.group,
  store: config.store,
  redis,
  pool,
  delayMs: config.delayMs,
  onDelivery: (d) =>
    write(
      `D ${JSON.stringify({ id: d.id, key: d.body?.key, seq: d.body?.seq, attempt: d.attempt, at: Date.now() })}`,
    ),
  afterEffect: (d) => {
    effects++;
    if (config.killAfter !== undefined && effects >= config.killAfter) {
      write(`K ${d.id}`);
      // stdout to a pipe is synchronous on Linux: the line is out before the kill.
      process.kill(process.pid, 'SIGKILL');
    }
  },
});
const subscription = await broker.subscribe<RelBody>(
  {
    topic: config.topic,
    group: config.group,
    order: config.order,
    concurrency: config.concurrency,
    closeTimeoutMs: 10_000,
  },
  handler,
);
write('READY');

process.once('SIGTERM', () => {
  void (async () => {
    await subscription.close();
    await broker.close();
    redis?.disconnect();
    await pool?.end();
    process.exit(0);
  })();
});
