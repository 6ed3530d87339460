import { performance } from 'node:perf_hooks';
import type { Broker } from '../core/broker.js';
import { silentLogger } from '../core/logger.js';
import { createOutbox } from '../patterns/outbox/outbox.js';
import { type OutboxRelay, startOutboxRelay } from '../patterns/outbox/relay.js';
import { ensureOutbox, type OutboxPoolLike } from '../patterns/outbox/schema.js';
import { inPooledTransaction } from '../patterns/pooled-transaction.js';
import { type DemoSummary, orderEvents, orderTopic, subscribeServices } from './demo.js';

export interface OutboxDemoSummary extends DemoSummary {
  /** Orders whose transaction rolled back (stock refused): their events must never arrive. */
  rolledBack: number;
  /** Events of rolled-back orders that arrived anyway (0 is the point). */
  rolledBackSeen: number;
  relays: number;
}

/** Every 25th order is refused by the stock check inside its transaction. */
const refused = (n: number) => n % 25 === 24;

/**
 * The order scenario through the transactional outbox: each order is one PostgreSQL
 * transaction that inserts the order row and its two events; some roll back. Two relays
 * publish the committed events; the three services check they got each committed order's
 * events once, in order, and none of a rolled-back one. The demo's tables are dropped at the end.
 */
export async function runOutboxDemo(
  broker: Broker,
  url: string,
  orders: number,
  pool: OutboxPoolLike,
): Promise<OutboxDemoSummary> {
  const suffix = `${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 6)}`;
  const table = `mqkit_demo_outbox_${suffix}`;
  const ordersTable = `mqkit_demo_orders_${suffix}`;
  await ensureOutbox(pool, { table, slots: 16 });
  await pool.query(
    `CREATE TABLE ${ordersTable} (id text PRIMARY KEY, sku text NOT NULL, quantity int NOT NULL)`,
  );
  const relays: OutboxRelay[] = [];
  const producers = [broker.producer(), broker.producer()];
  try {
    const topic = orderTopic();
    await broker.ensureTopic(topic.name, { partitions: 4 });
    const committed = orders - Array.from({ length: orders }, (_, n) => n).filter(refused).length;
    let rolledBackSeen = 0;
    const { stats, finished, close } = await subscribeServices(broker, topic, committed, (d) => {
      if (refused(Number(d.body.orderId.slice(6)))) rolledBackSeen++;
    });
    for (const producer of producers) {
      relays.push(await startOutboxRelay({ pool, producer, table, logger: silentLogger, rebalanceMs: 500 }));
    }
    const outbox = createOutbox({ table });
    const started = performance.now();
    let next = 0;
    // Eight order services place orders at once, one transaction per order.
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let n = next++; n < orders; n = next++) {
          await inPooledTransaction(await pool.connect(), async (tx) => {
            const events = orderEvents(topic, n);
            const body = events[0]!.body;
            await tx.query(`INSERT INTO ${ordersTable} (id, sku, quantity) VALUES ($1, $2, $3)`, [
              body.orderId,
              body.sku,
              body.quantity,
            ]);
            await outbox.addBatch(tx, events);
            await tx.query(refused(n) ? 'ROLLBACK' : 'COMMIT');
          });
        }
      }),
    );
    await finished;
    const seconds = (performance.now() - started) / 1000;
    await close();
    return {
      url,
      orders,
      messagesSent: committed * 2,
      duplicatesSent: 0,
      services: stats,
      seconds,
      throughput: (committed * 2 * stats.length) / seconds,
      rolledBack: orders - committed,
      rolledBackSeen,
      relays: relays.length,
    };
  } finally {
    await Promise.all(relays.map((r) => r.close()));
    await Promise.all(producers.map((p) => p.close()));
    await pool.query(`DROP TABLE IF EXISTS ${table}, ${table}_meta, ${table}_relays, ${ordersTable}`);
    await pool.query(`DROP FUNCTION IF EXISTS ${table}_notify()`);
  }
}

export function formatOutboxDemo(s: OutboxDemoSummary): string {
  const lines = [
    `mqkit demo --outbox: order scenario through a PostgreSQL outbox on ${s.url}`,
    `  orders placed         ${s.orders} (${s.rolledBack} rolled back by the stock check)`,
    `  events published      ${s.messagesSent} by ${s.relays} relays; events of rolled-back orders delivered: ${s.rolledBackSeen}`,
    '  service   tags     handled  duplicates absorbed  per-key order violations',
    ...s.services.map(
      (v) =>
        `  ${v.name.padEnd(9)} ${v.tags.padEnd(7)} ${String(v.handled).padStart(8)}  ${String(v.duplicatesAbsorbed).padStart(19)}  ${String(v.orderViolations).padStart(24)}`,
    ),
    `  time                  ${s.seconds.toFixed(2)} s (order transactions to last delivery)`,
  ];
  return lines.join('\n');
}
