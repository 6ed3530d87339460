import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Broker, connect, isMqError, type Subscription } from '../../src/index.js';
import { Collector, uniqueName, waitFor } from '../../src/testing/index.js';
import { type PrivateRabbitNode, startPrivateRabbitNode } from '../infra/rabbitmq-node.js';
import { expectNothingAcknowledgedLost } from './crash-helpers.js';

// These tests kill and alarm a RabbitMQ node, so they run on a private one, never the shared broker.
describe('rabbitmq: broker crash, restart and resource alarms (private node)', () => {
  let node: PrivateRabbitNode;
  let broker: Broker | undefined;
  const subscriptions: Subscription[] = [];

  beforeAll(async () => {
    node = await startPrivateRabbitNode();
  }, 90_000);

  afterAll(async () => {
    await node?.stop();
  });

  afterEach(async () => {
    await Promise.all(subscriptions.splice(0).map((s) => s.close({ timeoutMs: 1000 })));
    await broker?.close();
    broker = undefined;
  });

  const open = async (): Promise<Broker> => {
    broker = await connect(node.url, { rabbitmq: { reconnect: { initialMs: 100, maxMs: 500 } } });
    return broker;
  };

  it('after a SIGKILL and restart, every send it confirmed is delivered, the rest fail retriably, consumers resume', async () => {
    const b = await open();
    const topic = uniqueName('crash');
    await b.ensureTopic(topic);
    const got = new Collector<{ i: number }>();
    const ordered = new Collector<{ i: number }>();
    subscriptions.push(await b.subscribe({ topic, group: 'c', concurrency: 4 }, got.handler()));
    subscriptions.push(
      await b.subscribe({ topic, group: 'o', order: 'key', concurrency: 4 }, ordered.handler()),
    );
    await expectNothingAcknowledgedLost({
      producer: b.producer({ timeoutMs: 20_000 }),
      topic,
      collectors: { concurrent: got, 'key order': ordered },
      crash: () => node.kill(),
      restart: () => node.start(),
      timeoutMs: 60_000,
    });
  }, 180_000);

  it('during a memory alarm: publishes are held and time out retriably, consumers still drain, and all resumes when it clears', async () => {
    const b = await open();
    const topic = uniqueName('alarm');
    await b.ensureTopic(topic);
    let openGate: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      openGate = resolve;
    });
    const got = new Collector<{ n: number }>();
    const ordered = new Collector<{ n: number }>();
    subscriptions.push(
      await b.subscribe(
        { topic, group: 'g', concurrency: 8 },
        got.handler(() => gate),
      ),
      await b.subscribe(
        { topic, group: 'k', order: 'key', concurrency: 8 },
        ordered.handler(() => gate),
      ),
    );
    const patient = b.producer({ timeoutMs: 60_000 });
    const hasty = b.producer({ timeoutMs: 1_500 });
    const queued = 500; // more than the prefetch: draining them needs the broker to read acks
    await patient.sendBatch(
      Array.from({ length: queued }, (_, n) => ({ topic, key: `k${n % 50}`, body: { n } })),
    );

    await node.memoryAlarm(true);
    try {
      // The broker blocks a connection when it next publishes: the first send may slip through.
      const outcome = (sent: Promise<unknown>) =>
        sent.then(
          () => 'sent',
          (error: unknown) => error,
        );
      const first = await outcome(hasty.send({ topic, body: { n: -2 } }));
      if (first !== 'sent') expect(isMqError(first, 'TIMEOUT'), String(first)).toBe(true);
      let held = true;
      const waiting = patient.send({ topic, body: { n: -1 } }).finally(() => {
        held = false;
      });
      waiting.catch(() => {}); // awaited below; a failure must not also surface as unhandled
      const timedOut = await outcome(hasty.send({ topic, body: { n: -3 } }));
      expect(isMqError(timedOut, 'TIMEOUT'), String(timedOut)).toBe(true);
      expect((timedOut as { retriable: boolean }).retriable).toBe(true);
      expect(held).toBe(true); // still held 1.5 s into the alarm
      // Publishing is blocked, yet the consumers ack and drain what was queued.
      openGate();
      await got.waitForCount(queued, 60_000);
      await ordered.waitForCount(queued, 60_000);
      expect(held).toBe(true);
      await node.memoryAlarm(false);
      await waiting;
    } finally {
      openGate();
      await node.memoryAlarm(false);
    }
    await waitFor(() => got.bodies.some((body) => body.n === -1));
    expect((await b.backlog(topic, 'g')).total).toBe(0);
  }, 120_000);
});
