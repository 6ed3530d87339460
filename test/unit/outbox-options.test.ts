import { describe, expect, it } from 'vitest';
import { connect, isMqError } from '../../src/index.js';
import {
  createOutbox,
  halfMessages,
  type OutboxPoolLike,
  outboxMigration,
  startOutboxRelay,
} from '../../src/patterns/index.js';

/** A pool that must never be used: options are checked before any connection. */
const unusedPool: OutboxPoolLike = {
  connect: () => Promise.reject(new Error('no connection expected')),
  query: () => Promise.reject(new Error('no query expected')),
};

async function configField(run: () => unknown): Promise<string> {
  try {
    await run();
  } catch (error) {
    if (isMqError(error, 'CONFIG')) return (error as unknown as { field: string }).field;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('outbox options', () => {
  it('refuse unknown keys and bad values, naming the field, before connecting', async () => {
    const broker = await connect('memory://outbox-options');
    const producer = broker.producer();
    const relay = (extra: object) => () => startOutboxRelay({ pool: unusedPool, producer, ...extra });
    expect(await configField(relay({ batchsize: 10 }))).toBe('outboxRelay.batchsize');
    expect(await configField(relay({ batchSize: 0 }))).toBe('outboxRelay.batchSize');
    expect(await configField(relay({ table: 'Bad-Name' }))).toBe('outboxRelay.table');
    expect(await configField(relay({ backoff: { initial: 1 } }))).toBe('outboxRelay.backoff.initial');
    expect(await configField(relay({ backoff: { multiplier: 0.5 } }))).toBe('outboxRelay.backoff.multiplier');
    expect(await configField(relay({ listen: 'yes' }))).toBe('outboxRelay.listen');
    expect(await configField(relay({ producer: {} }))).toBe('outboxRelay.producer');
    expect(await configField(() => createOutbox({ tabel: 'x' } as never))).toBe('outbox.tabel');
    expect(await configField(() => outboxMigration({ slots: 0 }))).toBe('ensureOutbox.slots');
    expect(await configField(() => outboxMigration({ notify: 'no' } as never))).toBe('ensureOutbox.notify');
    const half = (extra: object) => () =>
      halfMessages({
        pool: unusedPool,
        producer,
        group: 'g',
        checkLocalTransaction: () => 'commit',
        ...extra,
      });
    expect(await configField(half({ maxchecks: 3 }))).toBe('halfMessages.maxchecks');
    expect(await configField(half({ group: 'mq.reserved' }))).toBe('halfMessages.group');
    expect(await configField(half({ checkLocalTransaction: undefined }))).toBe(
      'halfMessages.checkLocalTransaction',
    );
    expect(await configField(half({ immunityMs: -1 }))).toBe('halfMessages.immunityMs');
    expect(await configField(half({ relay: { batchSize: 0 } }))).toBe('halfMessages.relay.batchSize');
    expect(await configField(half({ relay: { pollms: 1 } }))).toBe('halfMessages.relay.pollms');
    expect(await configField(half({ relay: { backoff: { initialMs: -1 } } }))).toBe(
      'halfMessages.relay.backoff.initialMs',
    );
    expect(await configField(half({ relay: { table: 'other' } }))).toBe('halfMessages.relay.table');
    await broker.close();
  });

  it('add refuses a malformed message in the writer’s transaction, as send would', async () => {
    const queries: string[] = [];
    const tx = {
      query: async (text: string) => {
        queries.push(text);
        return { command: 'INSERT', rowCount: 1, rows: [] };
      },
    };
    const outbox = createOutbox();
    expect(await configField(() => outbox.add(tx, { topic: 'mq.delay', body: 1 }))).toBe('message.topic');
    expect(await configField(() => outbox.add(tx, { topic: 't', body: 1, headers: { 'mq-id': 'x' } }))).toBe(
      'message.headers.mq-id',
    );
    expect(queries).toEqual([]);
    expect(await outbox.add(tx, { topic: 't', body: 1, id: 'given' })).toBe('given');
    expect(queries).toHaveLength(1);
  });

  it('the migration fixes the slot count in the generated column', () => {
    const sql = outboxMigration({ table: 'app_outbox', slots: 8 }).join('\n');
    expect(sql).toContain('CREATE TABLE IF NOT EXISTS app_outbox (');
    expect(sql).toContain('% 8) STORED');
    expect(sql).toContain('txid xid8 NOT NULL DEFAULT pg_current_xact_id()');
    expect(sql).toContain('CREATE TRIGGER app_outbox_notify');
  });

  it('notify: false makes no NOTIFY trigger and drops one made before', () => {
    const sql = outboxMigration({ table: 'app_outbox', notify: false }).join('\n');
    expect(sql).not.toContain('CREATE TRIGGER');
    expect(sql).not.toContain('pg_notify');
    expect(sql).toContain('DROP TRIGGER app_outbox_notify ON app_outbox');
  });
});
