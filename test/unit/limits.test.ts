import { describe, expect, it } from 'vitest';
import {
  backoffDelay,
  MAX_ATTEMPTS,
  MAX_CONCURRENCY,
  MAX_PARTITIONS,
  MAX_TIMER_MS,
  resolveSubscribeOptions,
} from '../../src/core/options.js';
import { type ConfigError, connect, isMqError } from '../../src/index.js';

let n = 0;
const unique = (prefix: string): string => `${prefix}-${process.pid}-${Date.now().toString(36)}-${++n}`;

async function refused(promise: Promise<unknown>): Promise<ConfigError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!isMqError(error, 'CONFIG')) throw new Error(`expected a ConfigError, got ${String(error)}`);
  return error as ConfigError;
}

function refusedNow(call: () => unknown): ConfigError {
  try {
    call();
  } catch (error) {
    if (isMqError(error, 'CONFIG')) return error as ConfigError;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('upper bounds', () => {
  it.each(['1e9', '0x10', '1e2', '+1', '1.0', ' 1', '', '-1', '0', '4097', '99999999999999999999'])(
    'memory://?partitions=%j is refused at connect',
    async (value) => {
      // memory://x?partitions=1e9 used to connect; its first send then ran V8 out of memory.
      const error = await refused(connect(`memory://${unique('m')}?partitions=${encodeURIComponent(value)}`));
      expect(error.field).toBe('memory:// query parameter partitions');
    },
  );

  it('accepts plain decimal partitions and retention up to the bounds', async () => {
    const broker = await connect(`memory://${unique('m')}?partitions=${MAX_PARTITIONS}&retention=10`);
    const topic = unique('t');
    await broker.producer().send({ topic, key: 'k', body: 1 });
    expect((await broker.backlog(topic, 'g')).partitions).toHaveLength(MAX_PARTITIONS);
    await broker.close();
  });

  it('refuses out-of-range memory options given as options', async () => {
    for (const memory of [{ partitions: 1e9 }, { retention: 1e9 }, { partitions: 1.5 }, { retention: '5' }]) {
      const error = await refused(connect(`memory://${unique('m')}`, { memory: memory as never }));
      expect(error.field).toMatch(/^memory\.(partitions|retention)$/);
    }
  });

  it('refuses ensureTopic beyond MAX_PARTITIONS', async () => {
    const broker = await connect(`memory://${unique('m')}`);
    for (const partitions of [100_000, MAX_PARTITIONS + 1, 0, 1.5, Number.NaN]) {
      const error = await refused(broker.ensureTopic(unique('t'), { partitions }));
      expect(error.field).toBe('ensureTopic.partitions');
    }
    await broker.ensureTopic(unique('t'), { partitions: MAX_PARTITIONS });
    await broker.close();
  });

  it('bounds concurrency, attempts, back-off and timeouts of a subscription', () => {
    const base = { topic: 'orders', group: 'g' };
    const cases: [object, string][] = [
      [{ concurrency: MAX_CONCURRENCY + 1 }, 'subscribe.concurrency'],
      [{ retry: { attempts: MAX_ATTEMPTS + 1 } }, 'subscribe.retry.attempts'],
      [{ retry: { attempts: 1e9 } }, 'subscribe.retry.attempts'],
      [{ retry: { backoff: { multiplier: 101 } } }, 'subscribe.retry.backoff.multiplier'],
      [
        { retry: { backoff: { multiplier: Number.POSITIVE_INFINITY } } },
        'subscribe.retry.backoff.multiplier',
      ],
      [{ retry: { backoff: { multiplier: Number.NaN } } }, 'subscribe.retry.backoff.multiplier'],
      [{ retry: { backoff: { initialMs: MAX_TIMER_MS + 1 } } }, 'subscribe.retry.backoff.initialMs'],
      [{ retry: { backoff: { maxMs: 1e12 } } }, 'subscribe.retry.backoff.maxMs'],
      [{ closeTimeoutMs: 1e12 }, 'subscribe.closeTimeoutMs'],
    ];
    for (const [extra, field] of cases) {
      expect(refusedNow(() => resolveSubscribeOptions({ ...base, ...extra })).field).toBe(field);
    }
    const top = resolveSubscribeOptions({
      ...base,
      concurrency: MAX_CONCURRENCY,
      retry: { attempts: MAX_ATTEMPTS, backoff: { multiplier: 100 } },
    });
    expect(top.concurrency).toBe(MAX_CONCURRENCY);
  });

  it('computes finite back-off delays up to the last attempt', () => {
    const steep = { attempts: MAX_ATTEMPTS, initialMs: 1000, multiplier: 100, maxMs: 60_000 };
    expect(backoffDelay(steep, MAX_ATTEMPTS - 1)).toBe(60_000);
    const none = { attempts: MAX_ATTEMPTS, initialMs: 0, multiplier: 2, maxMs: 60_000 };
    // 0 × 2^999 is 0 × Infinity, NaN, in floating point: no delay is what was asked.
    expect(backoffDelay(none, MAX_ATTEMPTS - 1)).toBe(0);
  });

  it('refuses a producer timeout beyond what a timer can wait', async () => {
    const broker = await connect(`memory://${unique('m')}`);
    expect(refusedNow(() => broker.producer({ timeoutMs: MAX_TIMER_MS + 1 })).field).toBe(
      'producer.timeoutMs',
    );
    await broker.close();
  });
});
