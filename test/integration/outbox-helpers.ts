import { type AddressInfo, createServer, type Socket, connect as tcpConnect } from 'node:net';
import type pg from 'pg';
import { ensureOutbox } from '../../src/patterns/index.js';

/** A logger that drops everything: the tests assert on events. */
export const quietLogger = { debug() {}, info() {}, warn() {}, error() {} };

const made: string[] = [];

/** A fresh outbox table for one test; `dropOutboxTables` drops it. */
export async function freshOutboxTable(pool: pg.Pool, slots?: number): Promise<string> {
  const table = `ob_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
  made.push(table);
  await ensureOutbox(pool, { table, slots });
  return table;
}

/** Drops the outbox tables (and their trigger functions) this file made. Call it in afterAll. */
export async function dropOutboxTables(pool: pg.Pool): Promise<void> {
  for (const table of made.splice(0)) {
    await pool.query(`DROP TABLE IF EXISTS ${table}, ${table}_meta, ${table}_relays`);
    await pool.query(`DROP FUNCTION IF EXISTS ${table}_notify()`);
  }
}

/** Runs `work` in a transaction on its own connection, then commits (or rolls back). */
export async function inTransaction<T>(
  pool: pg.Pool,
  work: (tx: pg.PoolClient) => Promise<T>,
  end: 'COMMIT' | 'ROLLBACK' = 'COMMIT',
): Promise<T> {
  const tx = await pool.connect();
  try {
    await tx.query('BEGIN');
    const result = await work(tx);
    await tx.query(end);
    return result;
  } catch (error) {
    await tx.query('ROLLBACK').catch(() => {});
    throw error;
  } finally {
    tx.release();
  }
}

/**
 * A TCP proxy to PostgreSQL that can turn one connection half-open: `silence(pid)` closes the
 * server side of the connection whose backend is `pid` (PostgreSQL ends that session and
 * releases its locks) and leaves the client side open and mute, as a dropped network path
 * would. The backend pid is read from the BackendKeyData message of the startup.
 */
export async function pgSilencingProxy(target: string): Promise<{
  url: string;
  silence(pid: number): boolean;
  close(): Promise<void>;
}> {
  const upstream = new URL(target);
  const silencers = new Map<number, () => void>();
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const pgSide = tcpConnect(Number(upstream.port || 5432), upstream.hostname);
    sockets.add(client);
    sockets.add(pgSide);
    let silenced = false;
    let startup: Buffer | undefined = Buffer.alloc(0);
    client.on('data', (d) => {
      if (!silenced) pgSide.write(d);
    });
    pgSide.on('data', (d) => {
      if (silenced) return;
      if (startup !== undefined) {
        // Messages: a type byte, then an int32 length that counts itself.
        startup = Buffer.concat([startup, d]);
        for (let at = 0; startup !== undefined && startup.length >= at + 5; ) {
          const length = startup.readInt32BE(at + 1);
          if (startup.length < at + 1 + length) break;
          if (startup[at] === 0x4b /* 'K' */) {
            silencers.set(startup.readInt32BE(at + 5), () => {
              silenced = true;
              pgSide.destroy();
            });
            startup = undefined;
          } else at += 1 + length;
        }
      }
      client.write(d);
    });
    client.on('error', () => pgSide.destroy());
    pgSide.on('error', () => {
      if (!silenced) client.destroy();
    });
    client.on('close', () => pgSide.destroy());
    pgSide.on('close', () => {
      if (!silenced) client.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = new URL(target);
  url.hostname = '127.0.0.1';
  url.port = String((server.address() as AddressInfo).port);
  return {
    url: url.toString(),
    silence(pid) {
      const silence = silencers.get(pid);
      silence?.();
      return silence !== undefined;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
