import { afterEach, describe, expect, it } from 'vitest';
import { connect, isMqError } from '../../src/index.js';
import { waitFor } from '../../src/testing/index.js';

describe('connect', () => {
  const saved = process.env.MQ_URL;
  afterEach(() => {
    if (saved === undefined) delete process.env.MQ_URL;
    else process.env.MQ_URL = saved;
  });

  it('uses MQ_URL when the code names no broker, and memory:// without it', async () => {
    delete process.env.MQ_URL;
    const fallback = await connect();
    expect(fallback.kind).toBe('memory');
    await fallback.close();
    // MQ_URL is what connect() uses: a broker it names is the one you get...
    process.env.MQ_URL = 'memory://from-env';
    const fromEnv = await connect();
    const named = await connect('memory://from-env');
    const topic = `env-${Date.now().toString(36)}`;
    await fromEnv.ensureTopic(topic, { partitions: 1 });
    await fromEnv.producer().send({ topic, body: 1 });
    expect((await named.backlog(topic, 'nobody-yet')).total).toBe(1); // same embedded broker
    await Promise.all([fromEnv.close(), named.close()]);
    // ...and a bad one is refused, naming the variable's value.
    process.env.MQ_URL = 'nats://127.0.0.1:4222';
    const error = await connect().catch((e: unknown) => e);
    expect(isMqError(error, 'CONFIG')).toBe(true);
  });

  it('refuses an unknown scheme or a malformed URL with a ConfigError naming the url', async () => {
    for (const url of ['nats://127.0.0.1:4222', 'not a url']) {
      const error = await connect(url).catch((e: unknown) => e);
      expect(isMqError(error, 'CONFIG')).toBe(true);
      expect((error as Error).message).toMatch(/^url: /);
    }
  });

  it('refuses unknown adapter options', async () => {
    const error = await connect('memory://x', { memory: { partition: 3 } as never }).catch((e: unknown) => e);
    expect(isMqError(error, 'CONFIG')).toBe(true);
    expect((error as Error).message).toContain('memory.partition');
  });

  it('shares one embedded broker between connections to the same name', async () => {
    const a = await connect('memory://shared-name');
    const b = await connect('memory://shared-name');
    const got: unknown[] = [];
    await b.subscribe({ topic: 'shared-topic', group: 'g' }, (d) => {
      got.push(d.body);
    });
    await a.producer().send({ topic: 'shared-topic', body: 'hello' });
    await waitFor(() => got.length === 1);
    expect(got).toEqual(['hello']);
    await a.close();
    await b.close();
  });
});
