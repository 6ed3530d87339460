import type { PgClientLike } from './idempotency/postgres-consumer.js';

/**
 * Runs `work` in a transaction on `client`, a connection just taken from its pool, and gives
 * the connection back afterwards whatever happens: the caller hands it over.
 *
 * Sends BEGIN, then calls `work`, which ends the transaction itself (COMMIT or ROLLBACK) before
 * it resolves. Should BEGIN or `work` throw, the transaction is rolled back before the
 * connection goes back, so the pool never hands out one inside a transaction; if even the
 * ROLLBACK fails, the connection is destroyed instead (`release(true)`). Resolves with what
 * `work` resolves with; rejects with what BEGIN or `work` threw.
 */
export async function inPooledTransaction<C extends PgClientLike, R>(
  client: C,
  work: (client: C) => Promise<R>,
): Promise<R> {
  let broken = false;
  try {
    await client.query('BEGIN');
    return await work(client);
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {
      broken = true;
    });
    throw error;
  } finally {
    client.release(broken);
  }
}
