import { describe, expect, inject, it } from 'vitest';
import { names } from '../../src/adapters/rabbitmq/names.js';
import type { MqEventName, MqEvents } from '../../src/core/events.js';
import type { Logger } from '../../src/core/logger.js';
import {
  type Broker,
  connect,
  isMqError,
  type MqError,
  type OutgoingMessage,
  type SendResult,
} from '../../src/index.js';
import { Collector, uniqueName, waitFor } from '../../src/testing/index.js';
import { createSmallTopic } from './kafka-helpers.js';
import { rawConnection, serverSideCloser } from './rabbitmq-helpers.js';
import { mqRejection, recordingLogger } from './spies.js';

type Recorded = { [E in MqEventName]: { event: E; payload: MqEvents[E] } }[MqEventName];

/** Every event of `names` the broker emits, in order. */
function record(broker: Broker, ...events: MqEventName[]): Recorded[] {
  const seen: Recorded[] = [];
  for (const event of events) broker.on(event, (payload) => seen.push({ event, payload } as Recorded));
  return seen;
}

function payloads<E extends MqEventName>(seen: readonly Recorded[], event: E): MqEvents[E][] {
  return seen.filter((r) => r.event === event).map((r) => r.payload as MqEvents[E]);
}

/** What `publish-confirmed` says of a send's result. */
function confirmedOf(broker: string, r: SendResult): MqEvents['publish-confirmed'] {
  return { broker, topic: r.topic, id: r.id, partition: r.partition, offset: r.offset };
}

/**
 * The producer events every broker emits the same way: one `publish-confirmed` per message of
 * a send, a sendBatch and a sendOneWay; nothing for a message refused before sending (here: a
 * body over the broker's limit); and a listener that throws breaks nothing.
 */
function producerEvents(kind: string, open: (logger?: Logger) => Promise<Broker>): void {
  it('publish-confirmed: one per message of send, sendBatch and sendOneWay, as their results say', async () => {
    const broker = await open();
    try {
      const topic = uniqueName('confirmed');
      await broker.ensureTopic(topic, { partitions: 2 });
      const seen = record(broker, 'publish-confirmed', 'publish-failed');
      const producer = broker.producer();
      const one = await producer.send({ topic, key: 'a', body: { n: 1 } });
      const batch = await producer.sendBatch([
        { topic, key: 'b', body: { n: 2 } },
        { topic, key: 'c', body: { n: 3 } },
        { topic, body: { n: 4 } },
      ]);
      expect(payloads(seen, 'publish-confirmed')).toEqual([one, ...batch].map((r) => confirmedOf(kind, r)));
      producer.sendOneWay({ topic, id: 'one-way-1', body: { n: 5 } });
      const oneWay = await waitFor(() =>
        payloads(seen, 'publish-confirmed').find((e) => e.id === 'one-way-1'),
      );
      expect(oneWay).toMatchObject({ broker: kind, topic });
      expect(payloads(seen, 'publish-failed')).toEqual([]);
      await producer.close();
    } finally {
      await broker.close();
    }
  });

  it('nothing for messages refused before sending (a body over maxMessageBytes): they never left the process', async () => {
    const broker = await open();
    try {
      const topic = uniqueName('too-big');
      await broker.ensureTopic(topic);
      const seen = record(broker, 'publish-confirmed', 'publish-failed');
      const producer = broker.producer();
      const big = new Uint8Array(broker.capabilities.maxMessageBytes + 1);
      const alone = await mqRejection(producer.send({ topic, id: 'big-1', body: big }));
      expect(alone.code).toBe('PUBLISH');
      // One refused message stops its batch: none of it is sent, nothing is reported.
      const batch = await mqRejection(
        producer.sendBatch([
          { topic, id: 'fits', body: { n: 1 } },
          { topic, id: 'big-2', body: big },
        ]),
      );
      expect(batch.code).toBe('PUBLISH');
      const after = await producer.send({ topic, body: { n: 2 } });
      expect(seen).toEqual([{ event: 'publish-confirmed', payload: confirmedOf(kind, after) }]);
      await producer.close();
    } finally {
      await broker.close();
    }
  });

  it('a listener that throws is logged at warn and breaks no send', async () => {
    const log = recordingLogger();
    const broker = await open(log);
    try {
      const topic = uniqueName('throwing');
      await broker.ensureTopic(topic);
      broker.on('publish-confirmed', () => {
        throw new Error('listener bug');
      });
      const seen = record(broker, 'publish-confirmed');
      const failures: unknown[] = [];
      const producer = broker.producer({ onError: (error) => failures.push(error) });
      const sent = await producer.send({ topic, body: { n: 1 } });
      const batch = await producer.sendBatch([{ topic, body: { n: 2 } }]);
      producer.sendOneWay({ topic, id: 'one-way-2', body: { n: 3 } });
      await waitFor(() => seen.length === 3);
      // The other listener still got every event.
      expect(seen.map((r) => (r.payload as { id: string }).id)).toEqual([sent.id, batch[0]?.id, 'one-way-2']);
      expect(failures).toEqual([]);
      const warned = log.lines.filter((l) => l.level === 'warn' && l.message.includes("'publish-confirmed'"));
      expect(warned).toHaveLength(3);
      await producer.close();
    } finally {
      await broker.close();
    }
  });
}

describe('instrumentation events: memory', () => {
  producerEvents('memory', (logger) => connect(`memory://${uniqueName('events')}`, { logger }));
});

describe('instrumentation events: rabbitmq', () => {
  const amqpUrl = inject('amqpUrl');

  producerEvents('rabbitmq', (logger) => connect(amqpUrl, { logger }));

  it('publish-failed: one per message the broker refused (unroutable), from send, sendBatch and sendOneWay', async () => {
    const broker = await connect(amqpUrl, { rabbitmq: { holdUnroutedMs: 0 } });
    try {
      const topic = uniqueName('unroutable');
      await broker.ensureTopic(topic); // no group: nothing takes its messages
      const seen = record(broker, 'publish-confirmed', 'publish-failed');
      const oneWayErrors: MqError[] = [];
      const producer = broker.producer({ onError: (error) => oneWayErrors.push(error) });
      const alone = await mqRejection(producer.send({ topic, id: 'u-1', body: { n: 1 } }));
      expect(alone.code).toBe('PUBLISH');
      const batch = await mqRejection(
        producer.sendBatch([
          { topic, id: 'u-2', body: { n: 2 } },
          { topic, id: 'u-3', body: { n: 3 } },
        ]),
      );
      expect(batch.code).toBe('PUBLISH');
      producer.sendOneWay({ topic, id: 'u-4', body: { n: 4 } });
      await waitFor(() => payloads(seen, 'publish-failed').length === 4 && oneWayErrors.length === 1);
      const failed = payloads(seen, 'publish-failed');
      expect(failed.map((e) => e.id).sort()).toEqual(['u-1', 'u-2', 'u-3', 'u-4']);
      for (const e of failed) {
        expect(e).toMatchObject({ broker: 'rabbitmq', topic });
        expect(isMqError(e.error, 'PUBLISH')).toBe(true);
      }
      expect(failed.find((e) => e.id === 'u-1')?.error).toBe(alone);
      expect(payloads(seen, 'publish-confirmed')).toEqual([]);
      await producer.close();
    } finally {
      await broker.close();
    }
  });

  it('connection-lost, then connection-restored, when the server closes the connection', async () => {
    const name = uniqueName('events-dropped');
    const log = recordingLogger(); // the drop is logged at warn; kept out of the test output
    const broker = await connect(amqpUrl, { logger: log, rabbitmq: { connectionName: name } });
    try {
      const seen = record(broker, 'connection-lost', 'connection-restored');
      const closeServerSide = await serverSideCloser(amqpUrl, name, 'consuming');
      await closeServerSide();
      await waitFor(() => seen.some((r) => r.event === 'connection-restored'), {
        timeoutMs: 30_000,
        message: 'connection-restored was not emitted',
      });
      expect(seen.map((r) => r.event)).toEqual(['connection-lost', 'connection-restored']);
      const lost = seen[0]?.payload as MqEvents['connection-lost'];
      expect(lost.broker).toBe('rabbitmq');
      expect((lost.error as { code?: unknown }).code).toBe(320); // CONNECTION_FORCED
      expect(seen[1]?.payload).toEqual({ broker: 'rabbitmq' });
      // Usable again.
      const topic = uniqueName('after-drop');
      await broker.ensureTopic(topic);
      const got = new Collector();
      const sub = await broker.subscribe({ topic, group: 'g' }, got.handler());
      await broker.producer().send({ topic, body: { n: 1 } });
      await got.waitForCount(1);
      await sub.close({ timeoutMs: 1000 });
    } finally {
      await broker.close();
    }
  });

  it('nothing on close: closing a broker is no lost connection', async () => {
    const broker = await connect(amqpUrl);
    const seen = record(broker, 'connection-lost', 'connection-restored', 'error');
    const topic = uniqueName('quiet-close');
    await broker.ensureTopic(topic, { partitions: 2 });
    const sub = await broker.subscribe({ topic, group: 'g', order: 'key' }, () => {});
    await sub.close({ timeoutMs: 1000 });
    await broker.close();
    expect(seen).toEqual([]);
  });

  it('a membership channel the broker closes is logged at warn and an error event, no longer swallowed', async () => {
    const log = recordingLogger();
    const broker = await connect(amqpUrl, { logger: log, rabbitmq: { memberHeartbeatMs: 200 } });
    const admin = await rawConnection(amqpUrl);
    try {
      const topic = uniqueName('members-gone');
      const group = 'g';
      await broker.ensureTopic(topic, { partitions: 2 });
      const seen = record(broker, 'error');
      const sub = await broker.subscribe({ topic, group, order: 'key' }, () => {});
      try {
        expect(seen).toEqual([]);
        // An operator deletes the group's members exchange: announcements are refused (404).
        const channel = await admin.createChannel();
        await channel.deleteExchange(names.membersExchange(topic, group));
        await channel.close();
        const event = await waitFor(
          () => payloads(seen, 'error').find((e) => e.context.includes('announcing membership failed')),
          { timeoutMs: 15_000, message: 'the refused announcement was not reported' },
        );
        expect(event.broker).toBe('rabbitmq');
        expect(event.context).toContain(`group ${group} of ${topic}`);
        expect((event.error as { code?: unknown }).code).toBe(404);
        expect(
          log.lines.some((l) => l.level === 'warn' && l.message.includes('announcing membership failed')),
        ).toBe(true);
      } finally {
        await sub.close({ timeoutMs: 1000 });
      }
    } finally {
      await admin.close();
      await broker.close();
    }
  });
});

describe('instrumentation events: kafka', () => {
  const url = inject('kafkaUrl');

  producerEvents('kafka', (logger) => connect(url, { logger }));

  // Not sendOneWay: it writes with acks 0, so the broker's refusal never comes back.
  it('publish-failed: one per message the broker refused (over the topic max.message.bytes), from send and sendBatch', async () => {
    const topic = uniqueName('refused');
    await createSmallTopic(url, topic, 1000);
    const broker = await connect(url);
    try {
      const seen = record(broker, 'publish-confirmed', 'publish-failed');
      const producer = broker.producer();
      const big = (id: string): OutgoingMessage => ({ topic, id, body: { text: 'x'.repeat(5000) } });
      const alone = await mqRejection(producer.send(big('k-1')));
      const batch = await mqRejection(producer.sendBatch([big('k-2'), big('k-3')]));
      const failed = payloads(seen, 'publish-failed');
      expect(failed.map((e) => e.id)).toEqual(['k-1', 'k-2', 'k-3']);
      for (const e of failed) expect(e).toMatchObject({ broker: 'kafka', topic });
      expect(failed.map((e) => e.error)).toEqual([alone, batch, batch]);
      expect(payloads(seen, 'publish-confirmed')).toEqual([]);
      await producer.close();
    } finally {
      await broker.close();
    }
  }, 60_000);
});
