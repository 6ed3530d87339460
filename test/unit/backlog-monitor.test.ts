import { describe, expect, it, vi } from 'vitest';
import {
  type Admin,
  type Backlog,
  type Broker,
  connect,
  type Delivery,
  isMqError,
  type Subscription,
} from '../../src/index.js';
import {
  BacklogMonitor,
  type BacklogMonitorEvents,
  expand,
  overflow,
  scaleConcurrency,
  shaveProducer,
} from '../../src/patterns/index.js';
import { uniqueName, waitFor } from '../../src/testing/index.js';

/** An Admin whose backlog is whatever the test sets next (the monitor's input, scripted). */
function scripted(): Admin & { next: Backlog['partitions'] | Error } {
  const admin = {
    next: [] as Backlog['partitions'] | Error,
    ensureTopic: async () => {},
    async backlog(topic: string, group: string): Promise<Backlog> {
      if (admin.next instanceof Error) throw admin.next;
      const partitions = admin.next;
      return { topic, group, total: partitions.reduce((s, p) => s + p.backlog, 0), partitions };
    },
  };
  return admin;
}

describe('BacklogMonitor', () => {
  it('refuses bad options, naming the field', () => {
    const admin = scripted();
    const bad = (options: object, field: RegExp) => {
      let error: unknown;
      try {
        new BacklogMonitor(admin, { topic: 't', group: 'g', ...options });
      } catch (e) {
        error = e;
      }
      expect(isMqError(error, 'CONFIG')).toBe(true);
      expect((error as Error).message).toMatch(field);
    };
    bad({ intervalMs: 0 }, /backlogMonitor\.intervalMs/);
    bad({ window: 2 }, /backlogMonitor\.window/);
    bad({ windw: 5 }, /backlogMonitor\.windw: unknown option/);
    bad({ meter: {} }, /backlogMonitor\.meter/);
    bad({ group: '' }, /backlogMonitor\.group/);
  });

  it('emits a sample per sample, a health event per verdict change, and an error event for a failed sample', async () => {
    const admin = scripted();
    const monitor = new BacklogMonitor(admin, { topic: 't', group: 'g', intervalMs: 10, window: 3 });
    const events: string[] = [];
    monitor.on('health', (e: BacklogMonitorEvents['health']) =>
      events.push(`${e.partition}:${e.from}->${e.to}`),
    );
    const errors: unknown[] = [];
    monitor.on('error', (e) => errors.push(e.error));
    admin.next = [{ partition: 0, backlog: 5, committed: '0', end: '5', consumers: 1 }];
    await monitor.sample();
    expect(events).toEqual([]); // still unknown
    await monitor.sample();
    await monitor.sample();
    expect(events).toEqual(['0:unknown->stalled']);
    admin.next = [{ partition: 0, backlog: 0, committed: '5', end: '5', consumers: 1 }];
    const report = await monitor.sample();
    expect(events).toEqual(['0:unknown->stalled', '0:stalled->ok']);
    expect(report.partitions[0]).toMatchObject({
      backlog: 0,
      committed: '5',
      lagSeconds: 0,
      drainSeconds: 0,
      health: 'ok',
    });
    admin.next = new Error('broker down');
    monitor.start();
    await waitFor(() => errors.length > 0);
    await monitor.stop();
    expect((errors[0] as Error).message).toBe('broker down');
    expect(monitor.latest?.health).toBe('ok'); // the last good report stays
  });

  it('never has two samples in flight: a quick stop and start, and sample() while running, answered out of order, read no rewind', async () => {
    // Each backlog() call waits for the test to answer it; the answers carry the order they
    // were asked in (a later call sees a later committed position).
    const pending: ((committed: number) => void)[] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    let asked = 0;
    const admin: Admin = {
      ensureTopic: async () => {},
      backlog: (topic: string, group: string) => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        const committed = 10 * ++asked;
        return new Promise<Backlog>((resolve) => {
          pending.push(() => {
            inFlight--;
            const partitions = [
              {
                partition: 0,
                backlog: 50,
                committed: String(committed),
                end: String(committed + 50),
                consumers: 1,
              },
            ];
            resolve({ topic, group, total: 50, partitions });
          });
        });
      },
    };
    const monitor = new BacklogMonitor(admin, { topic: 't', group: 'g', intervalMs: 10, window: 5 });
    const verdicts: string[] = [];
    monitor.on('sample', (r) => verdicts.push(r.partitions[0]!.health));
    monitor.start();
    void monitor.stop();
    monitor.start(); // before the first sample settled
    const direct = monitor.sample();
    for (let round = 0; round < 12; round++) {
      await waitFor(() => pending.length > 0);
      // Answer the newest first when two are waiting.
      while (pending.length > 0) pending.pop()!(0);
    }
    await direct;
    await monitor.stop();
    while (pending.length > 0) pending.pop()!(0);
    expect(maxInFlight).toBe(1);
    expect(verdicts).not.toContain('rewound');
    expect(verdicts.length).toBeGreaterThanOrEqual(12);
  });

  it('a throwing listener does not stop sampling', async () => {
    const admin = scripted();
    const monitor = new BacklogMonitor(admin, { topic: 't', group: 'g', intervalMs: 10 });
    let samples = 0;
    monitor.on('sample', () => {
      samples++;
      throw new Error('listener bug');
    });
    monitor.start();
    await waitFor(() => samples >= 3);
    await monitor.stop();
  });
});

describe('strategies', () => {
  it('scaleConcurrency refuses a monitor of another topic or group, and bad bounds', async () => {
    const broker = await connect(`memory://${uniqueName('s')}`);
    const sub = await broker.subscribe({ topic: 't', group: 'g' }, () => {});
    const other = new BacklogMonitor(broker, { topic: 't', group: 'other' });
    expect(() => scaleConcurrency(sub, other, { max: 4 })).toThrow(/scaleConcurrency\.monitor/);
    const same = new BacklogMonitor(broker, { topic: 't', group: 'g' });
    expect(() => scaleConcurrency(sub, same, { max: 0 })).toThrow(/scaleConcurrency\.max/);
    expect(() => scaleConcurrency(sub, same, { min: 5, max: 4 })).toThrow(/scaleConcurrency\.min/);
    expect(() => scaleConcurrency(sub, same, { max: 4, step: 2 } as never)).toThrow(/scaleConcurrency\.step/);
    await broker.close();
  });

  it("peak shaving in 'fail' mode refuses with a retriable PublishError above the mark, and sends below the low one", async () => {
    const broker = await connect(`memory://${uniqueName('s')}`);
    const topic = uniqueName('t');
    await broker.ensureTopic(topic);
    const sub = await broker.subscribe({ topic, group: 'g' }, () => {});
    await sub.close(); // nobody consumes: the backlog is what is sent
    const monitor = new BacklogMonitor(broker, { topic, group: 'g' });
    const producer = shaveProducer(broker.producer(), monitor, { highWater: 3, lowWater: 1, mode: 'fail' });
    for (let i = 0; i < 3; i++) await producer.send({ topic, body: i });
    expect(producer.shaving).toBe(true); // counted locally, before any sample
    const refused = await producer.send({ topic, body: 'x' }).catch((e: unknown) => e);
    expect(isMqError(refused, 'PUBLISH') && refused.retriable).toBe(true);
    // Other topics pass.
    await producer.send({ topic: uniqueName('other'), body: 'y' });
    expect((await monitor.sample()).total).toBe(3);
    expect(producer.shaving).toBe(true);
    // Drain to the low mark: sends flow again.
    const drain = await broker.subscribe({ topic, group: 'g' }, () => {});
    await waitFor(async () => (await monitor.sample()).total <= 1);
    expect(producer.shaving).toBe(false);
    await producer.send({ topic, body: 'z' });
    await drain.close();
    await producer.close();
    await broker.close();
  });

  it("peak shaving in 'wait' mode releases held sends in call order, and times out retriably", async () => {
    const broker = await connect(`memory://${uniqueName('s')}`);
    const topic = uniqueName('t');
    await broker.ensureTopic(topic);
    const monitor = new BacklogMonitor(broker, { topic, group: 'g' });
    const producer = shaveProducer(broker.producer(), monitor, { highWater: 1, lowWater: 0, maxWaitMs: 50 });
    await producer.send({ topic, body: 0 });
    const timedOut = await producer.send({ topic, body: 'late' }).catch((e: unknown) => e);
    expect(isMqError(timedOut, 'TIMEOUT') && timedOut.retriable).toBe(true);
    const order: number[] = [];
    // One producer, three sends held while above the mark.
    const p2 = shaveProducer(broker.producer(), monitor, { highWater: 1, lowWater: 0, maxWaitMs: 10_000 });
    await monitor.sample(); // backlog 1 (group 'g' has no position: counted from the start)
    expect(p2.shaving).toBe(true);
    const sends = [1, 2, 3].map((i) => p2.send({ topic, key: 'k', body: i }).then(() => order.push(i)));
    expect(order).toEqual([]);
    const sub = await broker.subscribe({ topic, group: 'g', startFrom: 'earliest' }, () => {});
    await waitFor(async () => {
      await monitor.sample();
      return order.length === 3;
    });
    expect(order).toEqual([1, 2, 3]);
    await Promise.all(sends);
    await sub.close();
    await p2.close();
    await producer.close();
    await broker.close();
  });
});

describe('scaleConcurrency under continuous traffic', () => {
  it('lowers the concurrency while the backlog is small and steady though never empty (Kafka commits), raises it while it grows', async () => {
    // Offsets as a consumer keeping pace reports them: 100 more sent and committed per sample,
    // always 20 handled but not committed yet.
    let end = 20;
    let committed = 0;
    const admin: Admin = {
      ensureTopic: async () => {},
      backlog: async (topic: string, group: string) => ({
        topic,
        group,
        total: end - committed,
        partitions: [
          {
            partition: 0,
            backlog: end - committed,
            committed: String(committed),
            end: String(end),
            consumers: 1,
          },
        ],
      }),
    };
    const monitor = new BacklogMonitor(admin, { topic: 't', group: 'g', intervalMs: 1000 });
    let concurrency = 16;
    const sub = {
      topic: 't',
      group: 'g',
      get concurrency() {
        return concurrency;
      },
      setConcurrency: (c: number) => {
        concurrency = c;
      },
    } as unknown as Subscription;
    scaleConcurrency(sub, monitor, { min: 1, max: 16 });
    for (let i = 0; i < 8; i++) {
      end += 100;
      committed += 100;
      await monitor.sample();
      await new Promise((resolve) => setTimeout(resolve, 5)); // distinct sample times for the rates
    }
    expect(concurrency).toBeLessThan(16);
    const low = concurrency;
    // A backlog far above what one interval handles, growing: doubled.
    for (let i = 0; i < 3; i++) {
      end += 1_000_000;
      committed += 10;
      await monitor.sample();
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    expect(concurrency).toBeGreaterThan(low);
  });
});

describe('expand', () => {
  it('refuses an onError that is not a function', async () => {
    const broker = await connect(`memory://${uniqueName('s')}`);
    const topic = uniqueName('t');
    await broker.ensureTopic(topic);
    const monitor = new BacklogMonitor(broker, { topic, group: 'g' });
    const error = await expand(
      broker,
      monitor,
      { maxPartitions: 4, highWater: 1, onError: 5 as never },
      () => {},
    ).catch((e: unknown) => e);
    expect(isMqError(error, 'CONFIG')).toBe(true);
    expect((error as Error).message).toMatch(/expand\.onError/);
    await broker.close();
  });

  it('close during an expansion waits for it and leaves no subscription running', async () => {
    const inner = await connect(`memory://${uniqueName('s')}`);
    const topic = uniqueName('t');
    const group = uniqueName('g');
    await inner.ensureTopic(topic, { partitions: 2 });
    // The memory broker, with the expansion's ensureTopic held until the test opens it and
    // subscriptions counted while open.
    let open = () => {};
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    let raising = false;
    let running = 0;
    const broker = new Proxy(inner, {
      get(target, prop) {
        if (prop === 'ensureTopic') {
          return async (name: string, options?: { partitions?: number }) => {
            if (name === topic && (options?.partitions ?? 0) > 2) {
              raising = true;
              await gate;
            }
            return target.ensureTopic(name, options);
          };
        }
        if (prop === 'subscribe') {
          return async (options: Parameters<Broker['subscribe']>[0], handler: () => Promise<void>) => {
            const sub = await target.subscribe(options, handler);
            running++;
            return new Proxy(sub, {
              get(s, p) {
                if (p === 'close') {
                  return async (o?: { timeoutMs?: number }) => {
                    running--;
                    return s.close(o);
                  };
                }
                const v = Reflect.get(s, p, s);
                return typeof v === 'function' ? v.bind(s) : v;
              },
            });
          };
        }
        const value = Reflect.get(target, prop, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    }) as Broker;
    const monitor = new BacklogMonitor(broker, { topic, group, intervalMs: 20 });
    let release = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    // The first message waits until the expansion was decided (so a sample sees a backlog).
    const consumer = await expand(broker, monitor, { maxPartitions: 4, highWater: 1 }, () => held);
    try {
      expect(running).toBe(1);
      monitor.start();
      await consumer.producer.send({ topic, key: 'a', body: 1 });
      await waitFor(() => consumer.expanding);
      release();
      await waitFor(() => raising);
      const closing = consumer.close();
      open();
      await closing;
      expect(running).toBe(0);
    } finally {
      open();
      await monitor.stop();
      await inner.close();
    }
  });

  it('gives up an expansion whose drain takes longer than maxWaitMs: onError, held sends go, partitions unchanged', async () => {
    const broker = await connect(`memory://${uniqueName('s')}`);
    const topic = uniqueName('t');
    const group = uniqueName('g');
    await broker.ensureTopic(topic, { partitions: 2 });
    const monitor = new BacklogMonitor(broker, { topic, group, intervalMs: 20 });
    let unblock = () => {};
    const blocked = new Promise<void>((resolve) => {
      unblock = resolve;
    });
    const errors: unknown[] = [];
    const consumer = await expand(
      broker,
      monitor,
      { maxPartitions: 4, highWater: 1, maxWaitMs: 300, onError: (e) => errors.push(e) },
      () => blocked, // the first message never finishes: the topic never drains
    );
    try {
      monitor.start();
      await consumer.producer.send({ topic, key: 'a', body: 1 });
      await waitFor(() => consumer.expanding);
      const held = consumer.producer.send({ topic, key: 'b', body: 2 }).catch((e: unknown) => e);
      await waitFor(() => errors.length > 0, { timeoutMs: 10_000 });
      expect(isMqError(errors[0], 'TIMEOUT')).toBe(true);
      expect(consumer.expanding).toBe(false);
      expect(consumer.partitions).toBe(2);
      await held; // released (or timed out retriably), not left waiting
      expect(consumer.workers).toBe(1);
    } finally {
      unblock();
      await monitor.stop();
      await consumer.close();
      await broker.close();
    }
  });
});

describe('overflow', () => {
  it("after a restart, a backlog left on the wider topic is handled before the topic's messages of the same key", async () => {
    const broker = await connect(`memory://${uniqueName('s')}`);
    const topic = uniqueName('t');
    const wide = `${topic}.overflow`;
    const group = uniqueName('g');
    await broker.ensureTopic(topic);
    await broker.ensureTopic(wide, { partitions: 4 });
    // A previous run forwarded seq 0..9 of key k and stopped before the workers handled them;
    // seq 10..19 are still on the topic.
    const producer = broker.producer();
    for (let seq = 0; seq < 20; seq++) {
      await producer.send({ topic: seq < 10 ? wide : topic, key: 'k', body: { seq } });
    }
    await producer.close();
    const monitor = new BacklogMonitor(broker, { topic, group, intervalMs: 20 });
    const seen: number[] = [];
    const consumer = await overflow(
      broker,
      monitor,
      { partitions: 4, highWater: 1000 }, // never switches to forward on its own
      async (d: Delivery<{ seq: number }>) => {
        // The wider topic's workers are slower: handled directly, seq 10 would overtake.
        if (d.topic === wide) await new Promise((resolve) => setTimeout(resolve, 5));
        seen.push(d.body.seq);
      },
    );
    try {
      expect(consumer.mode).toBe('forward');
      monitor.start();
      await waitFor(() => seen.length >= 20, { timeoutMs: 10_000, message: () => seen.join(',') });
      expect(seen).toEqual(Array.from({ length: 20 }, (_, i) => i));
      await waitFor(() => consumer.mode === 'direct'); // drained: handled directly again
      expect(consumer.outstanding).toBe(0);
    } finally {
      await monitor.stop();
      await consumer.close();
      await broker.close();
    }
  });
});

describe('peak shaving releases', () => {
  it('held sends only up to the high-water mark per sample, in call order', async () => {
    const admin = scripted();
    const monitor = new BacklogMonitor(admin, { topic: 't', group: 'g' });
    const sent: number[] = [];
    const inner = {
      send: async (m: { body: unknown }) => {
        sent.push(m.body as number);
        return { id: String(m.body), topic: 't' };
      },
      sendBatch: async () => [],
      sendOneWay: () => {},
      close: async () => {},
    };
    const producer = shaveProducer(inner, monitor, { highWater: 10, lowWater: 2 });
    admin.next = [{ partition: 0, backlog: 10 }];
    await monitor.sample();
    expect(producer.shaving).toBe(true);
    const sends = Array.from({ length: 20 }, (_, i) => producer.send({ topic: 't', body: i }));
    expect(sent).toEqual([]);
    // Down to 2 behind: room for 7 more below 10, released in call order.
    admin.next = [{ partition: 0, backlog: 2 }];
    await monitor.sample();
    await waitFor(() => sent.length === 7, { timeoutMs: 2000, message: () => `sent ${sent}` });
    expect(sent).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(producer.shaving).toBe(true);
    // A sample asked for after those 7 were stored (a millisecond tie counts them as missing
    // from it, so the clock moves on) and handled: 9 more (0 + 9 < 10), then the last 4.
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 1000 });
    admin.next = [{ partition: 0, backlog: 0 }];
    await monitor.sample();
    await waitFor(() => sent.length === 16, { timeoutMs: 2000, message: () => `sent ${sent}` });
    vi.setSystemTime(Date.now() + 1000);
    admin.next = [{ partition: 0, backlog: 0 }];
    await monitor.sample();
    await Promise.all(sends);
    vi.useRealTimers();
    expect(sent).toEqual(Array.from({ length: 20 }, (_, i) => i));
    await producer.close();
  });
});
