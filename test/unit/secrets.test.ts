import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { redact } from '../../src/core/redact.js';
import { connect, isMqError } from '../../src/index.js';

// Every password below contains SECRET; no error mqkit produces for these URLs may show it,
// raw or percent-encoded, in its message, stack, cause chain or inspected form.
const SECRET = 's3cr3t';

/** Everything `console.error(err)` and a log shipper could print of an error and its causes. */
function everything(error: unknown): string {
  const parts = [inspect(error, { depth: 10 }), String(error)];
  let e: unknown = error;
  for (let i = 0; e instanceof Error && i < 10; i++) {
    parts.push(e.message, e.stack ?? '', JSON.stringify(e, Object.getOwnPropertyNames(e)));
    e = e.cause;
  }
  return parts.join('\n');
}

describe('no secret in errors about a URL', () => {
  const urls = [
    // Not parsable: the URL parser's TypeError holds the whole input in `input`.
    'amqp://guest:s3cr3t/Pw@x@127.0.0.1:5672/',
    'amqp://guest:s3cr3t@127.0.0.1:99999/',
    'amqp://guest:s3cr3t@bad host:5672/',
    'amqps://guest:s3cr3t:Pw%@127.0.0.1:notaport/vhost',
    'kafka://user:s3cr3t/Pw@x@127.0.0.1:9092',
    'kafka://user:s3cr3t@127.0.0.1:9092,bad host:9092',
    'kafka://user:s3cr3t?Pw#x@127.0.0.1:bad',
    'memory://user:s3cr3t/Pw@x@name',
    'nats://user:s3cr3t/Pw@x@127.0.0.1:4222',
    // Parsable, refused for another reason.
    'nats://user:s3cr3t%2FPw%40x@127.0.0.1:4222',
    'nats://127.0.0.1:4222/?password=s3cr3t',
    'nats://:s3cr3t@127.0.0.1:4222',
    'memory://user:s3cr3t@name?partitions=1e9',
    'memory://name?password=s3cr3t',
  ];

  it.each(urls)('%s', async (url) => {
    const error = await connect(url).then(
      async (broker) => {
        await broker.close();
        throw new Error('connected');
      },
      (e: unknown) => e,
    );
    expect(isMqError(error, 'CONFIG')).toBe(true);
    expect(everything(error)).not.toContain(SECRET);
  });

  it('keeps no URL-parser error as the cause of a malformed URL', async () => {
    const error = await connect('amqp://guest:s3cr3t/Pw@x@127.0.0.1:5672/').catch((e: unknown) => e);
    expect(isMqError(error, 'CONFIG')).toBe(true);
    expect((error as Error).cause).toBeUndefined();
    expect((error as Error).message).toContain('"amqp://guest:***@127.0.0.1:5672/"');
  });

  it('a refused RabbitMQ connection names the URL without its password', async () => {
    // Port 1 on the loopback refuses at once: no broker needed.
    const error = await connect('amqp://guest:s3cr3t%2FPw%40x@127.0.0.1:1/').catch((e: unknown) => e);
    expect(isMqError(error, 'CONNECTION')).toBe(true);
    expect((error as Error).message).toContain('guest:***@127.0.0.1:1');
    expect(everything(error)).not.toContain(SECRET);
  });
});

describe('redact', () => {
  it.each([
    ['amqp://guest:s3cr3t@127.0.0.1:5672/', 'amqp://guest:***@127.0.0.1:5672/'],
    ['amqp://guest:s3cr3t/Pw@x@127.0.0.1:5672/v', 'amqp://guest:***@127.0.0.1:5672/v'],
    ['amqp://guest:s3:cr3t@127.0.0.1', 'amqp://guest:***@127.0.0.1'],
    ['amqp://guest:s3cr3t%2F%40x@host', 'amqp://guest:***@host'],
    ['amqp://guest:s3cr3t%zz@host', 'amqp://guest:***@host'],
    ['kafka://user:s3cr3t#x@h1:9092,h2:9092', 'kafka://user:***@h1:9092,h2:9092'],
    ['kafka://user:s3cr3t?x@h1:9092', 'kafka://user:***@h1:9092'],
    ['redis://:s3cr3t@127.0.0.1:6379', 'redis://***@127.0.0.1:6379'],
    // A lone user info may be a token: hidden whole.
    ['https://s3cr3t@example.com/x', 'https://***@example.com/x'],
    ['amqp://host/v?password=s3cr3t&heartbeat=5', 'amqp://host/v?password=***&heartbeat=5'],
    ['kafka://h:9092?saslPassword=s3cr3t', 'kafka://h:9092?saslPassword=***'],
    ['x://h/?access_token=s3cr3t;api%4bey=s3cr3t', 'x://h/?access_token=***;api%4bey=***'],
    ['memory://name?partitions=4', 'memory://name?partitions=4'],
    ['not a url', 'not a url'],
    ['amqp:/:s3cr3t@127.0.0.1:5672', 'amqp:***@127.0.0.1:5672'],
    ['::s3cr3t@', '***@'],
    [':/:s3cr3t//@fz-a', '***@fz-a'],
    ['amqp:/:s3cr3t//@h', 'amqp:***@h'],
    ['//u:s3cr3t@h', '***@h'],
    ['kafka:user:s3cr3t@h:9092', 'kafka:***@h:9092'],
  ])('%s', (url, expected) => {
    expect(redact(url)).toBe(expected);
  });
});
