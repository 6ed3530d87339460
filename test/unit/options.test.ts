import { describe, expect, it } from 'vitest';
import { resolveProducerOptions, resolveSubscribeOptions } from '../../src/core/options.js';
import { ConfigError, isMqError } from '../../src/index.js';

function configError(call: () => unknown): ConfigError {
  try {
    call();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('options', () => {
  it('defaults to the safe choices', () => {
    const sub = resolveSubscribeOptions({ topic: 'orders', group: 'stock' });
    expect(sub).toMatchObject({
      mode: 'clustering',
      order: 'key',
      concurrency: 1,
      startFrom: 'earliest',
      retry: { attempts: 5, initialMs: 1000, multiplier: 2, maxMs: 60_000 },
      deadLetterTopic: 'orders.stock.dlq',
      closeTimeoutMs: 30_000,
    });
    const kafka = { idempotent: true };
    expect(resolveProducerOptions(undefined, kafka)).toMatchObject({
      acks: 'all',
      idempotent: true,
      timeoutMs: 30_000,
    });
    expect(resolveProducerOptions({ acks: 'leader' }, kafka).idempotent).toBe(false);
    expect(resolveProducerOptions()).toMatchObject({ acks: 'all', idempotent: false, timeoutMs: 30_000 });
  });

  it('gives broadcast subscriptions their own group, starting from the latest message', () => {
    const a = resolveSubscribeOptions({ topic: 'orders', group: 'cache', mode: 'broadcasting' });
    const b = resolveSubscribeOptions({ topic: 'orders', group: 'cache', mode: 'broadcasting' });
    expect(a.group).not.toBe(b.group);
    expect(a.group.startsWith('cache.')).toBe(true);
    expect(a.startFrom).toBe('latest');
  });

  it('refuses unknown keys and unsafe combinations, naming the field and the fix', () => {
    expect(
      configError(() => resolveSubscribeOptions({ topic: 't', group: 'g', prefetch: 5 } as never)).field,
    ).toBe('subscribe.prefetch');
    expect(
      configError(() =>
        resolveSubscribeOptions({ topic: 't', group: 'g', retry: { backoff: { initialMs: 10, maxMs: 5 } } }),
      ).field,
    ).toBe('subscribe.retry.backoff.maxMs');
    expect(
      configError(() => resolveSubscribeOptions({ topic: 't', group: 'g', deadLetter: { topic: 't' } }))
        .field,
    ).toBe('subscribe.deadLetter.topic');
    expect(
      configError(() => resolveSubscribeOptions({ topic: 't', group: 'g', order: 'fifo' as never })).message,
    ).toMatch(/subscribe\.order: must be one of 'concurrent', 'key', 'partition'/);
    // Each name is valid alone; `<topic>.<group>.retry` would pass Kafka's 249 characters.
    expect(
      configError(() => resolveSubscribeOptions({ topic: 't'.repeat(200), group: 'g'.repeat(60) })).field,
    ).toBe('subscribe.group');
    expect(resolveSubscribeOptions({ topic: 't'.repeat(200), group: 'g'.repeat(42) }).group).toHaveLength(42);
    const idempotent = configError(() => resolveProducerOptions({ acks: 'leader', idempotent: true }));
    expect(idempotent.message).toContain("set acks 'all'");
    expect(idempotent.retriable).toBe(false);
    expect(idempotent.code).toBe('CONFIG');
  });

  it('refuses idempotent: true with an UnsupportedError where the broker has no idempotent producer', () => {
    expect(resolveProducerOptions({ idempotent: true }, { idempotent: true }).idempotent).toBe(true);
    let error: unknown;
    try {
      resolveProducerOptions({ idempotent: true }, { idempotent: false });
    } catch (e) {
      error = e;
    }
    expect(isMqError(error, 'UNSUPPORTED'), String(error)).toBe(true);
    expect((error as Error).message).toMatch(/^producer\.idempotent: /);
    expect(resolveProducerOptions({ idempotent: false }, { idempotent: false }).idempotent).toBe(false);
    // A bad combination is a ConfigError everywhere, before the broker's support is asked.
    expect(configError(() => resolveProducerOptions({ acks: 'none', idempotent: true })).field).toBe(
      'producer.idempotent',
    );
  });

  it("accepts 'discard' as an explicit opt-out of dead-lettering", () => {
    expect(
      resolveSubscribeOptions({ topic: 't', group: 'g', deadLetter: 'discard' }).deadLetterTopic,
    ).toBeUndefined();
  });
});
