import { describe, expect, it } from 'vitest';
import type { OutgoingRecord, RecordPosition } from '../../src/adapters/kafka/client.js';
import { DELAY_TIERS, dueAt, nextHop, tierFor, tierTopic } from '../../src/adapters/kafka/delay-tiers.js';
import { type KafkaBrokerOptions, resolveKafkaOptions } from '../../src/adapters/kafka/options.js';
import { SendQueue } from '../../src/adapters/kafka/send-queue.js';
import { MAX_TIMER_MS } from '../../src/core/options.js';
import { H as HEADERS } from '../../src/core/wire.js';
import { connect, isMqError } from '../../src/index.js';

async function configError(call: () => unknown): Promise<{ field: string; message: string }> {
  let error: unknown;
  try {
    await call();
  } catch (e) {
    error = e;
  }
  expect(isMqError(error, 'CONFIG'), String(error)).toBe(true);
  return error as { field: string; message: string };
}

describe('kafka options', () => {
  it('reads a broker list, credentials and query parameters from the URL', async () => {
    // connect() parses the host list; the unknown option proves it got as far as the adapter.
    const error = await configError(() =>
      connect('kafka://h1:9092,h2:9093', { kafka: { bogus: 1 } as never }),
    );
    expect(error.field).toBe('kafka.bogus');

    const resolved = resolveKafkaOptions(
      new URL('kafka://alice:s%40cret@h1%3A9092,h2?clientId=billing&ssl=true&saslMechanism=scram-sha-512'),
    );
    expect(resolved.client).toMatchObject({
      brokers: ['h1:9092', 'h2:9092'],
      clientId: 'billing',
      ssl: true,
      sasl: { mechanism: 'scram-sha-512', username: 'alice', password: 's@cret' },
    });
  });

  it('refuses bad values with the field named', async () => {
    const url = new URL('kafka://127.0.0.1:9092');
    const cases: [() => unknown, string][] = [
      [() => resolveKafkaOptions(url, { producer: { lingerMs: -1 } }), 'kafka.producer.lingerMs'],
      [
        () => resolveKafkaOptions(url, { consumer: { heartbeatIntervalMs: 20_000 } }),
        'kafka.consumer.heartbeatIntervalMs',
      ],
      [() => resolveKafkaOptions(url, { logLevel: 'loud' as never }), 'kafka.logLevel'],
      [
        () => resolveKafkaOptions(new URL('kafka://127.0.0.1:9092?acks=1'), {}),
        'kafka:// query parameter acks',
      ],
      [() => resolveKafkaOptions(new URL('kafka:///'), {}), 'url'],
      // Refused before connecting: kafkajs has no snappy codec unless one is registered.
      [
        () => connect('kafka://127.0.0.1:1', { kafka: { producer: { compression: 'snappy' } } }),
        'kafka.producer.compression',
      ],
    ];
    for (const [call, field] of cases) {
      const error = await configError(call);
      expect(error.field).toBe(field);
    }
  });
});

describe('kafka timer options', () => {
  it('caps every millisecond option at the longest timer Node honours', () => {
    const url = new URL('kafka://127.0.0.1:9092');
    const over = MAX_TIMER_MS + 1;
    const cases: [KafkaBrokerOptions, string][] = [
      [{ connectionTimeoutMs: over }, 'kafka.connectionTimeoutMs'],
      [{ authenticationTimeoutMs: over }, 'kafka.authenticationTimeoutMs'],
      [{ requestTimeoutMs: over }, 'kafka.requestTimeoutMs'],
      [{ metadataMaxAgeMs: over }, 'kafka.metadataMaxAgeMs'],
      [{ producer: { lingerMs: over } }, 'kafka.producer.lingerMs'],
      [{ consumer: { sessionTimeoutMs: over } }, 'kafka.consumer.sessionTimeoutMs'],
      [
        { consumer: { sessionTimeoutMs: MAX_TIMER_MS, heartbeatIntervalMs: over } },
        'kafka.consumer.heartbeatIntervalMs',
      ],
      [{ consumer: { rebalanceTimeoutMs: over } }, 'kafka.consumer.rebalanceTimeoutMs'],
      [{ consumer: { maxWaitTimeMs: over } }, 'kafka.consumer.maxWaitTimeMs'],
      [{ consumer: { commitIntervalMs: over } }, 'kafka.consumer.commitIntervalMs'],
    ];
    for (const [options, field] of cases) {
      expect(() => resolveKafkaOptions(url, options), JSON.stringify(options)).toThrow(
        expect.objectContaining({ code: 'CONFIG', field }),
      );
    }
    // The bound itself is accepted.
    const resolved = resolveKafkaOptions(url, {
      metadataMaxAgeMs: MAX_TIMER_MS,
      consumer: { rebalanceTimeoutMs: MAX_TIMER_MS, maxWaitTimeMs: MAX_TIMER_MS },
    });
    expect(resolved.client.metadataMaxAgeMs).toBe(MAX_TIMER_MS);
    expect(resolved.consumer.rebalanceTimeoutMs).toBe(MAX_TIMER_MS);
  });
});

describe('kafka delay tiers', () => {
  it('hops through the longest tier not above the time left', () => {
    expect(tierFor(20).name).toBe('100ms');
    expect(tierFor(1_500).name).toBe('500ms');
    expect(tierFor(2_500).name).toBe('2s');
    expect(tierFor(86_400_000).name).toBe('1h');
    expect(DELAY_TIERS.map((t) => tierTopic('mq.delay', t))).toEqual([
      'mq.delay.100ms',
      'mq.delay.500ms',
      'mq.delay.2s',
      'mq.delay.10s',
      'mq.delay.1m',
      'mq.delay.10m',
      'mq.delay.1h',
    ]);
  });

  it('is due after the tier wait or at delivery time, whichever is first; delivery strips the delay headers', () => {
    const headers = {
      [HEADERS.id]: 'm1',
      [HEADERS.targetTopic]: 'orders',
      [HEADERS.targetGroup]: 'billing',
      [HEADERS.deliverAt]: '10000',
      'x-app': 'kept',
    };
    const tier = DELAY_TIERS[1]; // 500 ms
    const fetched = { offset: 0, key: 'k', value: new Uint8Array([1]), headers, timestamp: 8_000 };
    expect(tier && dueAt(tier, fetched)).toEqual({ due: 8_500, target: 'orders', deliverAt: 10_000 });
    expect(tier && dueAt(tier, { ...fetched, timestamp: 9_800 })?.due).toBe(10_000);
    expect(tier && dueAt(tier, { ...fetched, headers: { 'x-app': 'x' } })).toBeUndefined();

    expect(nextHop('mq.delay', fetched, 'orders', 10_000, 8_500).topic).toBe('mq.delay.500ms');
    const delivered = nextHop('mq.delay', fetched, 'orders', 10_000, 10_000);
    expect(delivered).toEqual({
      topic: 'orders',
      key: 'k',
      value: new Uint8Array([1]),
      headers: { [HEADERS.id]: 'm1', 'x-app': 'kept' },
    });
  });
});

describe('kafka send queue', () => {
  function record(n: number): OutgoingRecord {
    return { topic: 't', key: undefined, value: new Uint8Array([n]), headers: {} };
  }

  it('coalesces sends of one tick, and those queued while a request is in flight, never splitting a group', async () => {
    const requests: number[][] = [];
    let finish: (() => void) | undefined;
    const queue = new SendQueue(
      async (records) => {
        requests.push(records.map((r) => r.value[0] as number));
        await new Promise<void>((resolve) => {
          finish = resolve;
        });
        return records.map((_, i): RecordPosition => ({ partition: 0, offset: i }));
      },
      { lingerMs: 0, batchSize: 4, maxInFlight: 1 },
    );
    const first = [queue.push(record(1)), queue.push(record(2))];
    await new Promise((resolve) => setImmediate(resolve));
    expect(requests).toEqual([[1, 2]]);
    const group = queue.pushGroup([record(3), record(4), record(5)]);
    const after = [queue.push(record(6)), queue.push(record(7))];
    finish?.();
    expect(await Promise.all(first)).toEqual([
      { partition: 0, offset: 0 },
      { partition: 0, offset: 1 },
    ]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(requests).toEqual([
      [1, 2],
      [3, 4, 5, 6], // 7 would make 5, over batchSize
    ]);
    finish?.();
    expect((await group).map((p) => p.offset)).toEqual([0, 1, 2]);
    await new Promise((resolve) => setImmediate(resolve));
    finish?.();
    expect((await Promise.all(after)).map((p) => p.offset)).toEqual([3, 0]);
    expect(requests).toEqual([[1, 2], [3, 4, 5, 6], [7]]);
    await queue.drained();
  });

  it('fails every send of a failed request', async () => {
    const queue = new SendQueue(async () => Promise.reject(new Error('broker said no')), {
      lingerMs: 0,
      batchSize: 10,
      maxInFlight: 1,
    });
    const results = await Promise.allSettled([queue.push(record(1)), queue.pushGroup([record(2)])]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
  });
});
