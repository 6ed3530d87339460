import { describe, expect, it } from 'vitest';
import { resolveRabbitMqOptions } from '../../src/adapters/rabbitmq/options.js';
import { ConfigError } from '../../src/core/errors.js';
import { MAX_TIMER_MS } from '../../src/core/options.js';

function field(options: unknown): string | undefined {
  try {
    resolveRabbitMqOptions(options as never);
  } catch (error) {
    if (error instanceof ConfigError) return error.field;
    throw error;
  }
  return undefined;
}

describe('rabbitmq options', () => {
  it('refuses wrongly typed and unknown options at every level, naming the field', () => {
    expect(field({ tls: 'yes' })).toBe('rabbitmq.tls');
    expect(field({ tls: true })).toBe('rabbitmq.tls');
    expect(field({ tls: ['ca'] })).toBe('rabbitmq.tls');
    expect(field({ tls: { rejectUnauthorised: false } })).toBe('rabbitmq.tls.rejectUnauthorised');
    expect(field({ tls: { host: 'elsewhere' } })).toBe('rabbitmq.tls.host');
    expect(field({ tls: { rejectUnauthorized: 'no' } })).toBe('rabbitmq.tls.rejectUnauthorized');
    expect(field({ tls: { ca: 42 } })).toBe('rabbitmq.tls.ca');
    expect(field({ reconnect: 'fast' })).toBe('rabbitmq.reconnect');
    expect(field({ reconnect: { initialMs: 10, maxMS: 10 } })).toBe('rabbitmq.reconnect.maxMS');
    expect(field({ connectTimeoutMs: 0 })).toBe('rabbitmq.connectTimeoutMs');
    expect(field({ connectTimeoutMs: '1000' })).toBe('rabbitmq.connectTimeoutMs');
    expect(field({ prefetchh: 1 })).toBe('rabbitmq.prefetchh');
    expect(field({ partitions: 100_000 })).toBe('rabbitmq.partitions');
    expect(field({ prefetch: 70_000 })).toBe('rabbitmq.prefetch');
    expect(field([])).toBe('rabbitmq');
    expect(field('x')).toBe('rabbitmq');
  });

  it('takes TLS options and a connect timeout', () => {
    const resolved = resolveRabbitMqOptions({
      tls: { ca: ['-----BEGIN CERTIFICATE-----'], servername: 'rabbit', rejectUnauthorized: true },
      connectTimeoutMs: 2500,
    });
    expect(resolved.tls?.servername).toBe('rabbit');
    expect(resolved.connectTimeoutMs).toBe(2500);
    expect(resolveRabbitMqOptions().connectTimeoutMs).toBe(10_000);
  });

  it('never puts a string given as tls in the message, and never throws a TypeError on odd values', () => {
    const pem = '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----';
    let error: unknown;
    try {
      resolveRabbitMqOptions({ tls: pem as never });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).field).toBe('rabbitmq.tls');
    expect((error as ConfigError).message).toContain('got a string');
    expect((error as ConfigError).message).not.toContain('PRIVATE');
    expect((error as ConfigError).message).not.toContain('MIIE');
    expect(field({ queueType: Object.create(null) })).toBe('rabbitmq.queueType');
    expect(field({ queueType: 5n })).toBe('rabbitmq.queueType');
  });

  it('takes only an object literal as tls or reconnect: not a Map, a Date or a class instance', () => {
    class Settings {
      ca = 'x';
    }
    for (const value of [new Map(), new Date(), new Settings(), new String('x')]) {
      expect(field({ tls: value })).toBe('rabbitmq.tls');
      expect(field({ reconnect: value })).toBe('rabbitmq.reconnect');
      expect(field(value)).toBe('rabbitmq');
    }
    expect(
      resolveRabbitMqOptions({ tls: Object.assign(Object.create(null), { servername: 'r' }) }).tls,
    ).toEqual({
      servername: 'r',
    });
  });

  it('caps every timer option at the longest timer Node honours', () => {
    const over = MAX_TIMER_MS + 1;
    expect(field({ memberHeartbeatMs: over })).toBe('rabbitmq.memberHeartbeatMs');
    expect(field({ reconnect: { initialMs: over } })).toBe('rabbitmq.reconnect.initialMs');
    expect(field({ reconnect: { maxMs: over } })).toBe('rabbitmq.reconnect.maxMs');
    expect(field({ connectTimeoutMs: over })).toBe('rabbitmq.connectTimeoutMs');
    const longest = resolveRabbitMqOptions({
      reconnect: { initialMs: MAX_TIMER_MS, maxMs: MAX_TIMER_MS },
      connectTimeoutMs: MAX_TIMER_MS,
      memberHeartbeatMs: MAX_TIMER_MS,
    });
    expect(longest.reconnect).toEqual({ initialMs: MAX_TIMER_MS, maxMs: MAX_TIMER_MS });
  });
});
