import { describe, expect, it } from 'vitest';
import { resolveRabbitMqOptions } from '../../src/adapters/rabbitmq/options.js';
import { ConfigError } from '../../src/core/errors.js';

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
});
