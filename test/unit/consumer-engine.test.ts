import { afterEach, describe, expect, it } from 'vitest';
import { type Broker, connect, type Delivery, defineTopic, type MqEvents } from '../../src/index.js';
import { Collector, uniqueName, waitFor } from '../../src/testing/wait-for.js';

/**
 * Edge cases of the consumer engine, on the embedded broker (its own `memory://` name per test).
 * The engine is shared by every adapter; the conformance suite covers the common paths.
 */
let broker: Broker | undefined;
afterEach(async () => {
  await broker?.close();
  broker = undefined;
});

async function fresh(): Promise<Broker> {
  broker = await connect(`memory://${uniqueName('engine')}`);
  return broker;
}

function gate(): { promise: Promise<void>; open: () => void } {
  let open = () => {};
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

describe('consumer engine', () => {
  it('leaving a pull loop on the last attempt redelivers the message in hand; it is neither failed nor dead-lettered', async () => {
    const b = await fresh();
    const failed: string[] = [];
    const dead: string[] = [];
    b.on('failed', (e) => failed.push(e.id));
    b.on('dead-lettered', (e) => dead.push(e.id));
    const options = { topic: 'pull-last', group: 'g', retry: { attempts: 1 } };
    const stream = b.consume<number>(options);
    await stream.ready;
    const sent = await b.producer().send({ topic: 'pull-last', body: 1 });
    for await (const d of stream) {
      expect(d.id).toBe(sent.id);
      break; // in hand, not handled
    }
    const again = b.consume<number>(options);
    for await (const d of again) {
      expect(d.id).toBe(sent.id);
      expect(d.attempt).toBe(1);
      break;
    }
    expect(failed).toEqual([]);
    expect(dead).toEqual([]);
  });

  it('a retry whose back-off ended while every slot was busy does not run once close has started', async () => {
    const b = await fresh();
    const busy = gate();
    const runs: string[] = [];
    let retriedAt = 0;
    b.on('retried', () => {
      retriedAt = Date.now();
    });
    const subscription = await b.subscribe<string>(
      {
        topic: 'retry-close',
        group: 'g',
        order: 'key',
        concurrency: 1,
        retry: { attempts: 3, backoff: { initialMs: 20, maxMs: 20 } },
      },
      async (d) => {
        runs.push(`${d.body}@${d.attempt}`);
        if (d.body === 'a') throw new Error('fails');
        await busy.promise; // b holds the only slot
      },
    );
    const producer = b.producer();
    await producer.send({ topic: 'retry-close', key: 'a', body: 'a' });
    await waitFor(() => retriedAt > 0);
    await producer.send({ topic: 'retry-close', key: 'b', body: 'b' });
    await waitFor(() => runs.includes('b@1'));
    // a's back-off is over: it waits for b's slot.
    await waitFor(() => Date.now() > retriedAt + 40);
    const closing = subscription.close({ timeoutMs: 5000 });
    busy.open();
    await closing;
    expect(runs).toEqual(['a@1', 'b@1']);
  });

  it('a partition moves to a new member without waiting out closeTimeoutMs while its old member is paused with a retry waiting', async () => {
    const b = await fresh();
    await b.ensureTopic('paused-move', { partitions: 2 });
    const first = new Collector<number>();
    let failing = true;
    const one = await b.subscribe<number>(
      {
        topic: 'paused-move',
        group: 'g',
        closeTimeoutMs: 120_000,
        retry: { attempts: 100, backoff: { initialMs: 30, maxMs: 30 } },
      },
      first.handler(() => {
        if (failing) throw new Error('not yet');
      }),
    );
    const producer = b.producer();
    // Keys for both partitions; every message fails on member one and keeps retrying.
    for (let i = 0; i < 8; i++) await producer.send({ topic: 'paused-move', key: `k${i}`, body: i });
    const retried = new Set<number | undefined>();
    const stop = b.on('retried', (e) => retried.add(e.partition));
    await waitFor(() => retried.size === 2, { message: 'both partitions retrying' });
    stop();
    one.pause();
    failing = false;
    const second = new Collector<number>();
    await b.subscribe<number>({ topic: 'paused-move', group: 'g' }, second.handler());
    // Member two gets one partition's messages; with the old member waiting out 120 s this timed out.
    await second.waitForCount(1, 20_000);
    expect(second.deliveries.every((d) => d.partition === second.deliveries[0]?.partition)).toBe(true);
  }, 30_000);

  it('batch retries report each record with its own attempt', async () => {
    const b = await fresh();
    const retried = new Map<number, number[]>();
    const delivered = new Map<number, number[]>();
    const bodies = new Map<string, number>();
    b.on('retried', (e) => {
      const body = bodies.get(e.id) as number;
      retried.set(body, [...(retried.get(body) ?? []), e.attempt]);
    });
    const tries = new Map<number, number>();
    const done = new Collector<number>();
    await b.subscribe<number>(
      {
        topic: 'batch-attempts',
        group: 'g',
        order: 'key',
        batch: { maxSize: 10, maxWaitMs: 20 },
        retry: { attempts: 5, backoff: { initialMs: 10, maxMs: 10 } },
      },
      async (deliveries) => {
        const failures = new Map<Delivery<number>, unknown>();
        for (const d of deliveries) {
          delivered.set(d.body, [...(delivered.get(d.body) ?? []), d.attempt]);
          const n = (tries.get(d.body) ?? 0) + 1;
          tries.set(d.body, n);
          // 1 fails once, so 2 (its key) comes again with it, and fails there, while 3 (another
          // key) fails in both rounds: round two retries 2 as attempt 2 and 3 as attempt 3.
          if ((d.body === 1 && n === 1) || (d.body === 2 && n === 2) || (d.body === 3 && n <= 2))
            failures.set(d, new Error('again'));
          else done.deliveries.push(d);
        }
        return failures;
      },
    );
    const producer = b.producer();
    const sent = await producer.sendBatch([
      { topic: 'batch-attempts', key: 'k', body: 1 },
      { topic: 'batch-attempts', key: 'k', body: 2 },
      { topic: 'batch-attempts', key: 'j', body: 3 },
    ]);
    for (const [i, r] of sent.entries()) bodies.set(r.id, i + 1);
    await waitFor(
      () =>
        done.bodies.includes(1) && done.bodies.includes(3) && done.bodies.filter((x) => x === 2).length === 2,
    );
    expect(delivered.get(1)).toEqual([1, 2]);
    expect(delivered.get(2)).toEqual([1, 1, 2]);
    expect(delivered.get(3)).toEqual([1, 2, 3]);
    expect(retried.get(1)).toEqual([2]);
    // Round two failed 2 on its first counted attempt and 3 on its second: each retry event
    // carries the record's own next attempt, not the highest of the round.
    expect(retried.get(2)).toEqual([2]);
    expect(retried.get(3)).toEqual([2, 3]);
  });

  it('a handler failing its only attempt runs once, and its message is dead-lettered once', async () => {
    const b = await fresh();
    let runs = 0;
    const dead = new Collector();
    await b.subscribe({ topic: 'once.dlq', group: 'reader' }, dead.handler());
    await b.subscribe(
      { topic: 'once', group: 'g', retry: { attempts: 1 }, deadLetter: { topic: 'once.dlq' } },
      () => {
        runs++;
        throw new Error('refused');
      },
    );
    await b.producer().send({ topic: 'once', body: 1 });
    await dead.waitForCount(1);
    // A later message through the same subscription shows the first was not run again meanwhile.
    await b.producer().send({ topic: 'once', body: 2 });
    await dead.waitForCount(2);
    expect(runs).toBe(2);
    expect(dead.bodies).toEqual([1, 2]);
  });

  it('a decode failure whose error has a non-string message is dead-lettered, and the next messages flow', async () => {
    const b = await fresh();
    const odd = defineTopic('odd-error', {
      schema: {
        '~standard': {
          version: 1,
          vendor: 'test',
          validate: (value: unknown) => {
            if (value === 'bad') throw Object.assign(new Error(), { message: 42 });
            return { value: value as string };
          },
        },
      },
    });
    const dead = new Collector();
    await b.subscribe({ topic: 'odd-error.dlq', group: 'reader' }, dead.handler());
    const ok = new Collector<string>();
    await b.subscribe(
      { topic: odd, group: 'g', order: 'concurrent', deadLetter: { topic: 'odd-error.dlq' } },
      ok.handler(),
    );
    const producer = b.producer();
    await producer.send({ topic: 'odd-error', body: 'bad' });
    await producer.send({ topic: 'odd-error', body: 'ok1' });
    await producer.send({ topic: 'odd-error', body: 'ok2' });
    await ok.waitForCount(2, 10_000);
    await dead.waitForCount(1, 10_000);
    expect(dead.deliveries[0]?.deadLetter?.errorMessage).toBe('42');
  });

  it('partitions waiting out a retry back-off do not starve the healthy partitions of the prefetch', async () => {
    const b = await fresh();
    await b.ensureTopic('starve', { partitions: 16 });
    const healthy = new Collector<{ p: number; i: number }>();
    await b.subscribe<{ p: number; i: number }>(
      {
        topic: 'starve',
        group: 'g',
        order: 'partition',
        concurrency: 4,
        retry: { attempts: 3, backoff: { initialMs: 60_000, maxMs: 60_000 } },
      },
      healthy.handler((d) => {
        if (d.partition !== undefined && d.partition < 8) throw new Error('stuck');
      }),
    );
    const producer = b.producer();
    // Find keys for every partition, then fill each with 20 messages.
    const keyOf = new Map<number, string>();
    for (let k = 0; keyOf.size < 16; k++) {
      const r = await producer.send({ topic: 'starve', key: `probe-${k}`, body: { p: -1, i: -1 } });
      if (!keyOf.has(r.partition as number)) keyOf.set(r.partition as number, `probe-${k}`);
    }
    const batch = [];
    for (const [p, key] of keyOf)
      for (let i = 0; i < 20; i++) batch.push({ topic: 'starve', key, body: { p, i } });
    await producer.sendBatch(batch);
    // Partitions 8-15 get every message (20 each, plus their probes), while 0-7 are stuck at their first.
    await waitFor(() => healthy.bodies.filter((x) => x.p >= 8).length === 8 * 20, {
      timeoutMs: 20_000,
      message: () => `healthy partitions handled ${healthy.bodies.filter((x) => x.p >= 8).length} of 160`,
    });
  }, 30_000);

  it('a listener hears events only until it unsubscribes', async () => {
    const b = await fresh();
    const got = new Collector<number>();
    await b.subscribe<number>({ topic: 'quiet', group: 'g' }, got.handler());
    await b.producer().send({ topic: 'quiet', body: 1 });
    await got.waitForCount(1);
    const seen: MqEvents['handled'][] = [];
    const stop = b.on('handled', (e) => seen.push(e));
    await b.producer().send({ topic: 'quiet', body: 2 });
    await got.waitForCount(2);
    stop();
    await b.producer().send({ topic: 'quiet', body: 3 });
    await got.waitForCount(3);
    expect(seen.map((e) => e.topic)).toEqual(['quiet']);
  });
});

describe('claims', () => {
  it('put no listener on the handlers’ combined signal, which Node would then keep alive after revoke', async () => {
    const { EventEmitter } = await import('node:events');
    const { Claim } = await import('../../src/core/consumer-engine.js');
    const shutdown = new AbortController();
    const claim = new Claim('c0', 0, shutdown.signal);
    expect(EventEmitter.getEventListeners(claim.signal, 'abort')).toHaveLength(0);
    claim.stopped.abort();
    expect(claim.isStopped).toBe(true);
    expect(claim.isGivenUp).toBe(false);
    claim.abandoned.abort();
    expect(claim.isGivenUp).toBe(true);
  });
});
