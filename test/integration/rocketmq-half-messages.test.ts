import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type Broker, connect } from '../../src/index.js';
import {
  type HalfMessageEvents,
  halfMessages,
  type LocalTransactionState,
  type TransactionalProducer,
} from '../../src/patterns/index.js';
import { Collector, uniqueName, waitFor } from '../../src/testing/index.js';
import { quietLogger } from './outbox-helpers.js';

/**
 * `sendInTransaction` on RocketMQ uses the broker's transactional messages: the half message is
 * stored by the broker, invisible until committed, and the broker's check-back reaches a live
 * producer of the group (the test infrastructure's broker checks every 2 s after 2 s).
 */
describe('rocketmq: half messages are native transactional messages', () => {
  let pool: pg.Pool;
  let broker: Broker;
  const opened: TransactionalProducer[] = [];
  const brokers: Broker[] = [];

  beforeAll(async () => {
    pool = new pg.Pool({ connectionString: inject('pgUrl'), max: 2 });
    broker = await connect(inject('rocketmqUrl'));
  });

  afterAll(async () => {
    await Promise.all(opened.map((p) => p.close()));
    await Promise.all(brokers.map((b) => b.close()));
    await broker?.close();
    await pool?.end();
  });

  async function open(
    on: Broker,
    group: string,
    check: () => LocalTransactionState,
    topics?: string[],
  ): Promise<TransactionalProducer> {
    const producer = await halfMessages({
      pool,
      producer: on.producer(),
      group,
      checkLocalTransaction: check,
      logger: quietLogger,
      ...(topics === undefined ? {} : { topics }),
    });
    opened.push(producer);
    return producer;
  }

  it('commit delivers the message, rollback never does; the table is not used', async () => {
    const topic = uniqueName('half');
    await broker.ensureTopic(topic);
    const got = new Collector<{ n: number }>();
    await broker.subscribe({ topic, group: uniqueName('g') }, got.handler());
    const producer = await open(broker, uniqueName('tx'), () => 'unknown');
    const committed = await producer.sendInTransaction(
      { topic, body: { n: 1 } },
      async () => 'commit' as const,
    );
    expect(committed.state).toBe('committed');
    const rolledBack = await producer.sendInTransaction(
      { topic, body: { n: 2 } },
      async () => 'rollback' as const,
    );
    expect(rolledBack.state).toBe('rolled-back');
    // Sent after both with a plain send: once it arrives, the rolled-back one would have too.
    await broker.producer().send({ topic, body: { n: 3 } });
    await got.waitForCount(2, 30_000);
    await waitFor(() => got.bodies.some((b) => b.n === 3), { timeoutMs: 30_000 });
    expect(got.bodies.map((b) => b.n).sort()).toEqual([1, 3]);
    expect(got.deliveries.find((d) => d.body.n === 1)?.id).toBe(committed.id);
    // Native: nothing was stored in PostgreSQL.
    expect(await producer.state(committed.id)).toBeUndefined();
  });

  it("'unknown' leaves it to the broker's check-back, answered by checkLocalTransaction", async () => {
    const topic = uniqueName('half');
    await broker.ensureTopic(topic);
    const got = new Collector<{ n: number }>();
    await broker.subscribe({ topic, group: uniqueName('g') }, got.handler());
    const checked: HalfMessageEvents['checked'][] = [];
    const producer = await open(broker, uniqueName('tx'), () => 'commit');
    producer.on('checked', (e) => checked.push(e));
    const sent = await producer.sendInTransaction(
      { topic, key: 'k', tag: 'paid', headers: { 'x-trace': 't' }, body: { n: 1 } },
      async () => 'unknown' as const,
    );
    expect(sent.state).toBe('prepared');
    const [d] = await got.waitForCount(1, 60_000);
    expect(d?.id).toBe(sent.id);
    expect(d?.key).toBe('k');
    expect(d?.tag).toBe('paid');
    expect(d?.headers).toEqual({ 'x-trace': 't' });
    expect(checked.map((c) => [c.id, c.state])).toContainEqual([sent.id, 'commit']);
    expect(checked[0]?.checks).toBeGreaterThanOrEqual(1);
  });

  it('the check reaches another live producer of the group when the sender is gone', async () => {
    const topic = uniqueName('half');
    await broker.ensureTopic(topic);
    const got = new Collector<{ n: number }>();
    await broker.subscribe({ topic, group: uniqueName('g') }, got.handler());
    const group = uniqueName('tx');
    // The survivor answers 'commit'. It never sent: `topics` makes it a producer of the topic,
    // which the broker asks.
    await open(broker, group, () => 'commit', [topic]);
    const elsewhere = await connect(inject('rocketmqUrl'));
    brokers.push(elsewhere);
    let senderChecks = 0;
    const sender = await open(elsewhere, group, () => {
      senderChecks++;
      return 'unknown';
    });
    const sent = await sender.sendInTransaction({ topic, body: { n: 1 } }, async () => 'unknown' as const);
    // The sender goes away undecided, as if it crashed after its local transaction.
    await sender.close();
    await elsewhere.close();
    await waitFor(() => got.ids.has(sent.id), {
      timeoutMs: 60_000,
      message: 'the survivor never committed it',
    });
    expect(got.bodies.map((b) => b.n)).toEqual([1]);
    expect(senderChecks).toBe(0);
  });

  it('a producer of another group on the same topic never decides the half message', async () => {
    const topic = uniqueName('half');
    await broker.ensureTopic(topic);
    const got = new Collector<{ n: number }>();
    await broker.subscribe({ topic, group: uniqueName('g') }, got.handler());
    // RocketMQ 5 asks any live producer of the topic: once the sender is gone, this one (another
    // group, rolling back whatever it is asked) and a member of the right group are left.
    const other = await open(broker, uniqueName('other'), () => 'rollback');
    const otherChecks: string[] = [];
    other.on('checked', (e) => otherChecks.push(e.id));
    await other.sendInTransaction({ topic, body: { n: 0 } }, async () => 'commit' as const);
    const group = uniqueName('mine');
    const member = await open(broker, group, () => 'commit');
    await member.sendInTransaction({ topic, body: { n: 1 } }, async () => 'commit' as const);
    const elsewhere = await connect(inject('rocketmqUrl'));
    brokers.push(elsewhere);
    const sender = await open(elsewhere, group, () => 'unknown');
    const sent = await sender.sendInTransaction({ topic, body: { n: 2 } }, async () => 'unknown' as const);
    await sender.close();
    await elsewhere.close();
    await waitFor(() => got.ids.has(sent.id), { timeoutMs: 60_000, message: 'never committed' });
    expect(otherChecks).not.toContain(sent.id);
  });

  it('a check that arrives while the local transaction still runs is not asked; the commit stands', async () => {
    const topic = uniqueName('half');
    await broker.ensureTopic(topic);
    const got = new Collector<{ n: number }>();
    await broker.subscribe({ topic, group: uniqueName('g') }, got.handler());
    const asked: string[] = [];
    const producer = await open(broker, uniqueName('tx'), () => {
      asked.push('check');
      return 'rollback'; // what a check reading the local state sees before it is written
    });
    const sent = await producer.sendInTransaction({ topic, body: { n: 1 } }, async () => {
      // A local transaction that outlasts the broker's transactionTimeOut (2 s) and a few of its
      // check intervals (2 s) in the test infrastructure.
      await new Promise((resolve) => setTimeout(resolve, 8000));
      return 'commit' as const;
    });
    expect(sent.state).toBe('committed');
    await waitFor(() => got.ids.has(sent.id), { timeoutMs: 30_000 });
    expect(asked).toEqual([]);
  }, 60_000);

  it('refuses the table-only schedule options with UnsupportedError', async () => {
    for (const key of ['immunityMs', 'checkIntervalMs', 'maxChecks']) {
      await expect(
        halfMessages({
          pool,
          producer: broker.producer(),
          group: uniqueName('tx'),
          checkLocalTransaction: () => 'unknown',
          logger: quietLogger,
          [key]: 10,
        }),
      ).rejects.toMatchObject({ code: 'UNSUPPORTED' });
    }
    const producer = await open(broker, uniqueName('tx'), () => 'unknown');
    await expect(
      producer.sendInTransaction({ topic: uniqueName('half'), body: {} }, async () => 'commit' as const, {
        immunityMs: 1000,
      }),
    ).rejects.toMatchObject({ code: 'UNSUPPORTED' });
  });
});
