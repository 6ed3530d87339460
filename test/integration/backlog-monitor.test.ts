import { describe, expect, inject, it } from 'vitest';
import { type Broker, connect, type Delivery } from '../../src/index.js';
import {
  BacklogMonitor,
  type BacklogReport,
  HEALTH_CODE,
  HEALTH_METRIC,
  LAG_METRIC,
  type MeterLike,
  type PartitionHealth,
} from '../../src/patterns/index.js';
import { uniqueName, waitFor } from '../../src/testing/index.js';
import { plainKafka } from './kafka-helpers.js';

// The backlog monitor on real brokers: what it reports, and a scenario that causes each
// health verdict. Verdicts need a window of samples, so the monitor samples fast here.

const brokers = [
  ['memory', () => 'memory://backlog-monitor'],
  ['rabbitmq', () => inject('amqpUrl')],
  ['kafka', () => inject('kafkaUrl')],
] as const;

/** A gate a handler waits on until `open()`. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open: () => void = () => {};
  const wait = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { wait, open };
}

/**
 * Records every report of `monitor` from now on, so that a verdict seen for only a few samples
 * (a rewind leaves the window after `window` samples) is not missed by a slower check.
 */
function recorder(
  monitor: BacklogMonitor,
): (verdict: PartitionHealth, timeoutMs?: number) => Promise<BacklogReport> {
  const reports: BacklogReport[] = [];
  monitor.on('sample', (r) => reports.push(r));
  return (verdict, timeoutMs = 40_000) =>
    waitFor(() => reports.find((r) => r.partitions.some((p) => p.health === verdict)), {
      timeoutMs,
      intervalMs: 50,
      message: () =>
        `no ${verdict} verdict; last: ${reports
          .slice(-3)
          .map((r) => r.partitions.map((p) => `${p.partition}:${p.health}/${p.backlog}`).join(' '))
          .join(' | ')}`,
    });
}

const monitorOptions = { intervalMs: 150, window: 6 } as const;

describe.each(brokers)('backlog monitor on %s', (kind, url) => {
  const send = async (broker: Broker, topic: string, count: number, from = 0) => {
    const producer = broker.producer();
    await producer.sendBatch(
      Array.from({ length: count }, (_, i) => ({
        topic,
        key: `k${(from + i) % 10}`,
        body: { seq: from + i },
      })),
    );
    await producer.close();
  };

  it('reports backlog, consumers and the oldest age, and publishes messaging.consumer.lag', async () => {
    const broker = await connect(url());
    try {
      const topic = uniqueName('mon');
      const group = uniqueName('g');
      await broker.ensureTopic(topic, { partitions: 2 });
      const hold = gate();
      const sub = await broker.subscribe({ topic, group, order: 'key' }, () => hold.wait);
      // More than RabbitMQ's prefetch (64), so messages stay ready there too.
      await send(broker, topic, 300);
      const points: { value: number; attributes?: Record<string, string | number> }[] = [];
      const callbacks = new Map<
        string,
        (r: { observe: (v: number, a?: Record<string, string | number>) => void }) => void
      >();
      const meter: MeterLike = {
        createObservableGauge(name) {
          return {
            addCallback: (cb) => {
              callbacks.set(name, cb);
            },
          };
        },
      };
      const monitor = new BacklogMonitor(broker, { topic, group, ...monitorOptions, meter });
      const report = await monitor.sample();
      expect(report.partitions.map((p) => p.partition)).toEqual([0, 1]);
      expect(report.total).toBeGreaterThan(0);
      expect(report.total).toBeLessThanOrEqual(300);
      // One member holds both partitions (queues) once it has been assigned them.
      const attached = await waitFor(async () => {
        const r = await monitor.sample();
        return r.partitions.every((p) => p.consumers === 1) ? r : undefined;
      });
      expect(attached.consumers).toBe(2);
      if (kind === 'memory') {
        expect(attached.partitions.every((p) => p.lagSource === 'measured')).toBe(true);
      }
      expect([...callbacks.keys()]).toEqual([LAG_METRIC, HEALTH_METRIC]);
      callbacks.get(LAG_METRIC)?.({ observe: (value, attributes) => points.push({ value, attributes }) });
      const codes: number[] = [];
      callbacks.get(HEALTH_METRIC)?.({ observe: (value) => codes.push(value) });
      expect(codes).toEqual(attached.partitions.map((p) => HEALTH_CODE[p.health]));
      expect(points.map((p) => p.attributes?.['messaging.destination.partition.id'])).toEqual(['0', '1']);
      expect(points[0]?.attributes?.['messaging.destination.name']).toBe(topic);
      expect(points[0]?.attributes?.['messaging.consumer.group.name']).toBe(group);
      // The verdict is the health gauge's value, not a lag attribute (no new series per change).
      expect(points[0]?.attributes).not.toHaveProperty('mqkit.backlog.health');
      expect(points.reduce((s, p) => s + p.value, 0)).toBe(monitor.latest?.total);
      hold.open();
      await waitFor(async () => (await monitor.sample()).total === 0, { timeoutMs: 60_000 });
      await sub.close();
      await monitor.stop();
    } finally {
      await broker.close();
    }
  });

  it('stalled: a handler that blocks while messages wait', async () => {
    const broker = await connect(url());
    try {
      const topic = uniqueName('stall');
      const group = uniqueName('g');
      await broker.ensureTopic(topic, { partitions: 1 });
      const hold = gate();
      const sub = await broker.subscribe({ topic, group, order: 'key' }, () => hold.wait);
      await send(broker, topic, 300);
      const monitor = new BacklogMonitor(broker, { topic, group, ...monitorOptions });
      const verdict = recorder(monitor);
      monitor.start();
      const report = await verdict('stalled');
      expect(report.partitions[0]?.consumers).toBe(1);
      hold.open();
      await waitFor(async () => (await monitor.sample()).health === 'ok');
      await monitor.stop();
      await sub.close();
    } finally {
      await broker.close();
    }
  });

  it('stopped: the consumer is gone while messages wait', async () => {
    const broker = await connect(url());
    try {
      const topic = uniqueName('stop');
      const group = uniqueName('g');
      await broker.ensureTopic(topic, { partitions: 1 });
      let handled = 0;
      const sub = await broker.subscribe({ topic, group, order: 'key' }, () => {
        handled++;
      });
      await send(broker, topic, 20);
      await waitFor(() => handled >= 20);
      await sub.close();
      await send(broker, topic, 20, 20);
      const monitor = new BacklogMonitor(broker, { topic, group, ...monitorOptions });
      const verdict = recorder(monitor);
      monitor.start();
      const report = await verdict('stopped');
      expect(report.partitions[0]?.consumers).toBe(0);
      expect(report.total).toBe(20);
      await monitor.stop();
    } finally {
      await broker.close();
    }
  });

  it('falling-behind: a consumer slower than its producer', async () => {
    const broker = await connect(url());
    try {
      const topic = uniqueName('behind');
      const group = uniqueName('g');
      await broker.ensureTopic(topic, { partitions: 1 });
      // About 50 handled per second against 20 sent per sample (150 ms), about 130 per second.
      const sub = await broker.subscribe(
        { topic, group, order: 'key' },
        (_d: Delivery) => new Promise<void>((resolve) => setTimeout(resolve, 20)),
      );
      const monitor = new BacklogMonitor(broker, { topic, group, ...monitorOptions });
      const verdict = recorder(monitor);
      monitor.start();
      let sent = 0;
      let found: BacklogReport | undefined;
      const producing = (async () => {
        // One batch per sample, so every sample interval adds the same 20.
        while (found === undefined && sent < 4000) {
          await send(broker, topic, 20, sent);
          sent += 20;
          const at = monitor.latest?.at;
          await waitFor(() => monitor.latest?.at !== at);
        }
      })();
      found = await verdict('falling-behind', 60_000).finally(() => {
        found ??= {} as BacklogReport; // stop producing either way
      });
      await producing;
      expect(found.partitions[0]?.consumers).toBe(1);
      await monitor.stop();
      await sub.close();
    } finally {
      await broker.close();
    }
  }, 90_000);

  it('catching-up, then ok: a backlog drained by a consumer', async () => {
    const broker = await connect(url());
    try {
      const topic = uniqueName('drain');
      const group = uniqueName('g');
      await broker.ensureTopic(topic, { partitions: 1 });
      // Create the group (RabbitMQ: its queue) first, then build the backlog.
      const first = await broker.subscribe({ topic, group, order: 'key' }, () => {});
      await first.close();
      await send(broker, topic, 400);
      const monitor = new BacklogMonitor(broker, { topic, group, ...monitorOptions });
      const verdict = recorder(monitor);
      monitor.start();
      await waitFor(() => (monitor.latest?.total ?? 0) > 0);
      const sub = await broker.subscribe(
        { topic, group, order: 'key' },
        (_d: Delivery) => new Promise<void>((resolve) => setTimeout(resolve, 5)),
      );
      const report = await verdict('catching-up', 90_000);
      expect(report.partitions[0]?.drainSeconds).toBeGreaterThan(0);
      await waitFor(() => monitor.latest?.health === 'ok', { timeoutMs: 90_000 });
      await monitor.stop();
      await sub.close();
    } finally {
      await broker.close();
    }
  }, 120_000);

  it('rewound: a replay, where the broker has one (replay capability and an offset reset)', async () => {
    const broker = await connect(url());
    try {
      // Kafka's replay is an offset reset of the group (kafka-consumer-groups --reset-offsets),
      // done here with a plain kafkajs admin. The memory broker replays by startFrom only, which
      // a group with committed positions ignores, and RabbitMQ cannot replay a classic queue:
      // neither can move a group's position back, so neither can be rewound.
      if (!broker.capabilities.replay || kind !== 'kafka') {
        expect(kind === 'rabbitmq' ? !broker.capabilities.replay : kind === 'memory').toBe(true);
        return;
      }
      const topic = uniqueName('rewind');
      const group = uniqueName('g');
      await broker.ensureTopic(topic, { partitions: 1 });
      let handled = 0;
      const sub = await broker.subscribe({ topic, group, order: 'key' }, () => {
        handled++;
      });
      await send(broker, topic, 50);
      await waitFor(() => handled >= 50);
      await waitFor(async () => (await broker.backlog(topic, group)).partitions[0]?.committed === '50');
      await sub.close();
      const monitor = new BacklogMonitor(broker, { topic, group, ...monitorOptions });
      const verdict = recorder(monitor);
      monitor.start();
      await waitFor(() => monitor.latest !== undefined);
      const admin = plainKafka(url()).admin();
      await admin.connect();
      try {
        await admin.setOffsets({ groupId: group, topic, partitions: [{ partition: 0, offset: '0' }] });
      } finally {
        await admin.disconnect();
      }
      const report = await verdict('rewound');
      expect(report.partitions[0]?.backlog).toBe(50);
      await monitor.stop();
    } finally {
      await broker.close();
    }
  });
});
