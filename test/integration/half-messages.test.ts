import { spawn } from 'node:child_process';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type Broker, connect, defineTopic } from '../../src/index.js';
import {
  createOutbox,
  type HalfMessagesOptions,
  halfMessages,
  type LocalTransactionState,
  type TransactionalProducer,
} from '../../src/patterns/index.js';
import { Collector, uniqueName, waitFor } from '../../src/testing/index.js';
import { dropOutboxTables, freshOutboxTable, quietLogger } from './outbox-helpers.js';

let pool: pg.Pool;

beforeAll(() => {
  pool = new pg.Pool({ connectionString: inject('pgUrl'), max: 12 });
});

afterAll(async () => {
  if (pool !== undefined) await dropOutboxTables(pool);
  await pool?.end();
});

/**
 * Runs `sendInTransaction` in a child process whose local transaction never ends; resolves
 * once it runs, with the half message's id and a function that kills the child with SIGKILL.
 */
function senderKilledMidTransaction(
  table: string,
  group: string,
  topic: string,
): Promise<{ id: string; kill: () => Promise<string | null> }> {
  const script = `
    import pg from 'pg';
    import { connect } from './src/index.ts';
    import { halfMessages } from './src/patterns/index.ts';
    const pool = new pg.Pool({ connectionString: ${JSON.stringify(inject('pgUrl'))} });
    const broker = await connect('memory://sender');
    const quiet = { debug() {}, info() {}, warn() {}, error() {} };
    const producer = await halfMessages({
      pool, producer: broker.producer(), group: ${JSON.stringify(group)}, table: ${JSON.stringify(table)},
      checkLocalTransaction: () => 'unknown', immunityMs: 30, relay: false, logger: quiet,
    });
    await producer.sendInTransaction({ topic: ${JSON.stringify(topic)}, body: { n: 1 } }, async (half) => {
      process.stdout.write('LOCAL ' + half.id + '\\n');
      await new Promise(() => {});
    });
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: process.cwd(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const exited = new Promise<string | null>((resolve) =>
    child.on('exit', (_code, signal) => resolve(signal)),
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the child never ran its local transaction: ${stderr.slice(-500)}`));
    }, 60_000);
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
      const id = /LOCAL (\S+)\n/.exec(stdout)?.[1];
      if (id === undefined) return;
      clearTimeout(timer);
      resolve({
        id,
        kill: async () => {
          child.kill('SIGKILL');
          return exited;
        },
      });
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the child exited (${code}) before its local transaction: ${stderr.slice(-500)}`));
    });
  });
}

const brokers = [
  ['memory', () => `memory://${uniqueName('half')}`],
  ['kafka', () => inject('kafkaUrl')],
  ['rabbitmq', () => inject('amqpUrl')],
] as const;

describe.each(brokers)('half messages on %s', (_kind, url) => {
  let broker: Broker;
  const open: TransactionalProducer[] = [];
  beforeAll(async () => {
    broker = await connect(url());
  });
  afterAll(async () => {
    await Promise.all(open.map((p) => p.close()));
    await broker?.close();
  });

  /** A topic with a subscribed collector, a fresh table, and a way to start group members. */
  async function setup() {
    const table = await freshOutboxTable(pool);
    const topic = uniqueName('half');
    await broker.ensureTopic(topic, { partitions: 1 });
    const seen = new Collector<{ n: number }>();
    const sub = await broker.subscribe({ topic, group: uniqueName('g') }, seen.handler());
    const group = uniqueName('pg');
    const member = async (
      check: HalfMessagesOptions['checkLocalTransaction'],
      options: Partial<HalfMessagesOptions> = {},
    ) => {
      const p = await halfMessages({
        pool,
        producer: broker.producer(),
        group,
        table,
        checkLocalTransaction: check,
        immunityMs: 30,
        checkIntervalMs: 30,
        scanMs: 10,
        relay: { pollMs: 50, rebalanceMs: 100 },
        logger: quietLogger,
        ...options,
      });
      open.push(p);
      return p;
    };
    /** Sends an ordinary outbox message after everything else and waits for it: a fence. */
    const fence = async () => {
      const id = await createOutbox({ table }).add(pool, { topic, body: { n: -1 } });
      await waitFor(() => seen.ids.has(id));
    };
    return { table, topic, seen, sub, member, fence };
  }

  it('commit: the local transaction commits and the message is published', async () => {
    const { topic, seen, sub, member } = await setup();
    const checks: string[] = [];
    // Immunity far beyond the test: no check may come, however slow the machine.
    const producer = await member(
      (m) => {
        checks.push(m.id);
        return 'unknown';
      },
      { immunityMs: 60_000 },
    );
    let sawHalf: unknown;
    const result = await producer.sendInTransaction(
      { topic, key: 'k', body: { n: 1 } },
      async (half): Promise<LocalTransactionState> => {
        sawHalf = half;
        // While the local transaction runs, the message is stored but nobody sees it.
        expect(await producer.state(half.id)).toBe('prepared');
        return 'commit';
      },
    );
    expect(result.state).toBe('committed');
    expect(sawHalf).toMatchObject({ id: result.id, body: { n: 1 }, key: 'k', checks: 0 });
    await seen.waitForIds(1);
    expect(seen.deliveries[0]?.id).toBe(result.id);
    expect(checks).toEqual([]);
    await sub.close();
  });

  it('rollback: the message is never published', async () => {
    const { topic, seen, sub, member, fence } = await setup();
    // A check would publish it: none must happen (immunity far beyond the test).
    const producer = await member(() => 'commit', { immunityMs: 60_000 });
    const result = await producer.sendInTransaction({ topic, body: { n: 1 } }, () => 'rollback');
    expect(result.state).toBe('rolled-back');
    await fence();
    expect(seen.ids.has(result.id)).toBe(false);
    expect(await producer.state(result.id)).toBe('rolled-back');
    await sub.close();
  });

  it.each([
    ['commit', true],
    ['rollback', false],
  ] as const)('unknown, then the check answers %s', async (answer, published) => {
    const { topic, seen, sub, member, fence } = await setup();
    const checked: number[] = [];
    // The first check cannot tell yet; the second one can.
    const producer = await member((m) => {
      checked.push(m.checks);
      return m.checks < 2 ? 'unknown' : answer;
    });
    const result = await producer.sendInTransaction({ topic, body: { n: 1 } }, () => 'unknown');
    expect(result.state).toBe('prepared');
    await waitFor(async () => (await producer.state(result.id)) !== 'prepared');
    expect(checked).toEqual([1, 2]);
    await fence();
    expect(seen.ids.has(result.id)).toBe(published);
    if (!published) expect(await producer.state(result.id)).toBe('rolled-back');
    await sub.close();
  });

  it('a local transaction that throws leaves the message prepared, for the check to decide', async () => {
    const { topic, seen, sub, member } = await setup();
    const producer = await member(() => 'commit');
    const result = await producer.sendInTransaction({ topic, body: { n: 1 } }, () => {
      throw new Error('database timeout');
    });
    expect(result).toMatchObject({
      state: 'prepared',
      error: expect.objectContaining({ message: 'database timeout' }),
    });
    await waitFor(() => seen.ids.has(result.id));
    await sub.close();
  });

  it('another member of the group answers the check once the sender is gone', async () => {
    const { topic, seen, sub, member } = await setup();
    const senderAsked: string[] = [];
    const sender = await member((m) => {
      senderAsked.push(m.id); // it is gone: it must not be asked
      return 'unknown';
    });
    const result = await sender.sendInTransaction({ topic, body: { n: 1 } }, () => 'unknown', {
      immunityMs: 300,
    });
    await sender.close();
    const asked: string[] = [];
    await member((m) => {
      asked.push(m.id);
      return 'commit';
    });
    await waitFor(() => seen.ids.has(result.id));
    expect(asked).toEqual([result.id]);
    expect(senderAsked).toEqual([]);
    await sub.close();
  });

  it('the sender is killed (SIGKILL) during its local transaction: a live member’s check decides', async () => {
    const { table, topic, seen, sub, member } = await setup();
    const group = uniqueName('crash');
    const child = await senderKilledMidTransaction(table, group, topic);
    expect(await child.kill()).toBe('SIGKILL');
    const asked: string[] = [];
    await member(
      (m) => {
        asked.push(m.id);
        return 'commit';
      },
      { group },
    );
    await waitFor(() => seen.ids.has(child.id));
    expect(asked).toEqual([child.id]);
    await sub.close();
  });

  it('out of checks: parked as unresolved, listed, reported by the gauge, and resolvable by hand', async () => {
    const { table, topic, seen, sub, member, fence } = await setup();
    let gauge = -1;
    const producer = await member(() => 'unknown', { maxChecks: 3 });
    producer.on('prepared', (e) => {
      gauge = e.count;
    });
    const answers: LocalTransactionState[] = [];
    producer.on('checked', (e) => answers.push(e.state));
    // Another message waits for its first check far longer: the per-message immunity.
    const late = await producer.sendInTransaction({ topic, body: { n: 2 } }, () => 'unknown', {
      immunityMs: 600_000,
    });
    const result = await producer.sendInTransaction({ topic, body: { n: 1 } }, () => 'unknown');
    await waitFor(async () => (await producer.state(result.id)) === 'unresolved');
    expect(answers).toEqual(['unknown', 'unknown', 'unknown']);
    await waitFor(() => gauge === 1); // the late one is still prepared, never checked
    expect(await producer.unresolved()).toEqual([
      { id: result.id, topic, checks: 3, lastError: "no decision after 3 checks (each answered 'unknown')" },
    ]);
    expect((await createOutbox({ table }).parked(pool)).map((r) => [r.id, r.status])).toEqual([
      [result.id, 'unresolved'],
    ]);
    await fence();
    expect(seen.ids.has(result.id)).toBe(false);
    expect(await producer.resolve(result.id, 'commit')).toBe(true);
    expect(await producer.resolve(result.id, 'commit')).toBe(false);
    await waitFor(() => seen.ids.has(result.id));
    expect(await producer.resolve(late.id, 'rollback')).toBe(true);
    await waitFor(() => gauge === 0);
    await sub.close();
  });
});

describe('half messages: closed', () => {
  it('sendInTransaction after close() rejects with ClosedError and stores nothing', async () => {
    const broker = await connect(`memory://${uniqueName('half-closed')}`);
    const table = await freshOutboxTable(pool);
    const producer = await halfMessages({
      pool,
      producer: broker.producer(),
      group: uniqueName('pg'),
      table,
      checkLocalTransaction: () => 'commit',
      logger: quietLogger,
    });
    await producer.close();
    let ran = false;
    await expect(
      producer.sendInTransaction({ topic: 't', body: 1 }, () => {
        ran = true;
        return 'commit';
      }),
    ).rejects.toMatchObject({ code: 'CLOSED' });
    expect(ran).toBe(false);
    expect((await pool.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n).toBe(0);
    await broker.close();
  });
});

describe('half messages: a body written with a custom codec', () => {
  it('reaches the check as its stored bytes, with its content type, and the check decides', async () => {
    const broker = await connect(`memory://${uniqueName('half-codec')}`);
    const table = await freshOutboxTable(pool);
    const upper = {
      contentType: 'application/x-upper',
      encode: (s: string) => new TextEncoder().encode(s.toUpperCase()),
      decode: (b: Uint8Array) => new TextDecoder().decode(b).toLowerCase(),
    };
    const topic = defineTopic<string>(uniqueName('half-codec'), { codec: upper });
    const seen = new Collector<string>();
    const sub = await broker.subscribe({ topic, group: 'g' }, seen.handler());
    const asked: { body: unknown; contentType: string }[] = [];
    const producer = await halfMessages({
      pool,
      producer: broker.producer(),
      group: uniqueName('pg'),
      table,
      checkLocalTransaction: (m) => {
        asked.push({ body: m.body, contentType: m.contentType });
        return 'commit';
      },
      immunityMs: 30,
      checkIntervalMs: 30,
      maxChecks: 2,
      scanMs: 10,
      relay: { pollMs: 50, rebalanceMs: 100 },
      logger: quietLogger,
    });
    try {
      const result = await producer.sendInTransaction({ topic, body: 'order 7' }, (half) => {
        expect(half.contentType).toBe('application/x-upper');
        return 'unknown';
      });
      await waitFor(() => seen.ids.has(result.id));
      expect(seen.deliveries[0]?.body).toBe('order 7');
      expect(asked).toHaveLength(1);
      expect(asked[0]?.contentType).toBe('application/x-upper');
      expect(Buffer.from(asked[0]?.body as Uint8Array).toString()).toBe('ORDER 7');
    } finally {
      await producer.close();
      await sub.close();
      await broker.close();
    }
  });
});
