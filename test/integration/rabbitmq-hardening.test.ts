import net from 'node:net';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { checkAmqpLimits } from '../../src/adapters/rabbitmq/amqp-wire.js';
import { RabbitConnection } from '../../src/adapters/rabbitmq/connection.js';
import { resolveRabbitMqOptions } from '../../src/adapters/rabbitmq/options.js';
import { Publisher } from '../../src/adapters/rabbitmq/publisher.js';
import { PublishError } from '../../src/core/errors.js';
import { type Broker, connect, type MqError } from '../../src/index.js';
import { Collector, uniqueName, waitFor } from '../../src/testing/index.js';
import { serverSideCloser } from './rabbitmq-helpers.js';
import { selfSignedTlsServer } from './self-signed-tls.js';
import { mqRejection, recordingLogger } from './spies.js';

/** A TCP server that accepts connections and never writes a byte; tracks the sockets it holds. */
async function silentServer(): Promise<{ port: number; open: Set<net.Socket>; close: () => Promise<void> }> {
  const open = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    open.add(socket);
    socket.resume(); // reads (and drops) what the client says, so its FIN is seen
    socket.on('error', () => {});
    socket.on('close', () => open.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    port,
    open,
    close: async () => {
      for (const s of open) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('rabbitmq: hardening', () => {
  const amqpUrl = inject('amqpUrl');
  let broker: Broker;
  const logger = recordingLogger();

  beforeAll(async () => {
    broker = await connect(amqpUrl, { logger });
  });

  afterAll(async () => {
    await broker?.close();
  });

  describe('messages the AMQP encoder cannot carry', () => {
    const bad: [string, (topic: string) => Parameters<ReturnType<Broker['producer']>['send']>[0], RegExp][] =
      [
        ['an id over 255 bytes', (topic) => ({ topic, body: 1, id: 'i'.repeat(300) }), /message id.*255/],
        [
          'a header name over 255 bytes',
          (topic) => ({ topic, body: 1, headers: { ['h'.repeat(300)]: 'v' } }),
          /header name.*255/,
        ],
        [
          'a 300 KB key',
          (topic) => ({ topic, body: 1, key: 'k'.repeat(300_000) }),
          /bytes of AMQP properties/,
        ],
        [
          'a 1 MB header value',
          (topic) => ({ topic, body: 1, headers: { big: 'v'.repeat(1_000_000) } }),
          /bytes of AMQP properties/,
        ],
        [
          'a delayed send with a 300 KB key',
          (topic) => ({ topic, body: 1, key: 'k'.repeat(300_000), delayMs: 50 }),
          /bytes of AMQP properties/,
        ],
      ];

    for (const [what, message, limit] of bad) {
      it(`refuses ${what} at once, non-retriable, and the producer carries on`, async () => {
        const topic = uniqueName('encoder');
        await broker.ensureTopic(topic);
        const got = new Collector();
        const sub = await broker.subscribe({ topic, group: 'g' }, got.handler());
        // A stalled producer would fail these with TIMEOUT after 5 s, not PUBLISH.
        const producer = broker.producer({ timeoutMs: 5000 });
        try {
          const error = await mqRejection(producer.send(message(topic)));
          expect(error.code).toBe('PUBLISH');
          expect(error.retriable).toBe(false);
          expect(error.message).toMatch(limit);
          await producer.send({ topic, body: { after: 1 } });
          await got.waitForCount(1);
          expect(got.bodies).toEqual([{ after: 1 }]);
        } finally {
          await producer.close();
          await sub.close();
        }
      });
    }

    it('sendOneWay of such a message reports it to onError and the next send goes through', async () => {
      const topic = uniqueName('encoder-oneway');
      await broker.ensureTopic(topic);
      const errors: MqError[] = [];
      const producer = broker.producer({ timeoutMs: 5000, onError: (e) => errors.push(e) });
      try {
        expect(() =>
          producer.sendOneWay({ topic, body: 1, headers: { big: 'v'.repeat(1_000_000) } }),
        ).not.toThrow();
        expect(() => producer.sendOneWay({ topic, body: 1, id: 'i'.repeat(300) })).not.toThrow();
        await waitFor(() => errors.length === 2, { timeoutMs: 4000, message: 'onError not called twice' });
        expect(errors.map((e) => [e.code, e.retriable])).toEqual([
          ['PUBLISH', false],
          ['PUBLISH', false],
        ]);
        await producer.send({ topic, tag: 'x', body: 2 });
      } finally {
        await producer.close();
      }
    });

    it('a publish amqplib refuses to encode never stays in the publisher queue', async () => {
      // Past the producer's checks, straight at the publisher: amqplib's own encoder throws.
      const options = resolveRabbitMqOptions({ connectionName: uniqueName('publisher') });
      const connection = await RabbitConnection.open(new URL(amqpUrl), options, 'publishing', logger);
      const publisher = new Publisher(connection, {
        confirm: true,
        timeoutMs: 5000,
        onChannelError: () => {},
      });
      try {
        const refused = await mqRejection(
          publisher.publish('amq.direct', 'nowhere', Buffer.from('x'), { messageId: 'i'.repeat(300) }),
        );
        expect(refused.code).toBe('PUBLISH');
        expect(refused.retriable).toBe(false);
        await publisher.publish('amq.direct', 'nowhere', Buffer.from('y'), { messageId: 'ok' });
      } finally {
        await publisher.close();
        await connection.close();
      }
    });

    it('checks the negotiated frame size too', () => {
      const options = { messageId: 'm', headers: { h: 'v'.repeat(5000) } };
      expect(() => checkAmqpLimits('x', '', options)).not.toThrow();
      expect(() => checkAmqpLimits('x', '', options, 4096)).toThrow(PublishError);
    });
  });

  describe('connect timeout', () => {
    it('a peer that accepts TCP and never answers ends in a ConnectionError and a closed socket', async () => {
      const server = await silentServer();
      try {
        const started = Date.now();
        const error = await mqRejection(
          connect(`amqp://guest:guest@127.0.0.1:${server.port}`, {
            logger: recordingLogger(),
            rabbitmq: { connectTimeoutMs: 300 },
          }),
        );
        expect(error.code).toBe('CONNECTION');
        expect(error.retriable).toBe(true);
        expect(error.message).toContain('300 ms');
        expect(error.message).toContain('connectTimeoutMs');
        expect(Date.now() - started).toBeLessThan(10_000); // used to hang for minutes
        await waitFor(() => server.open.size === 0, { timeoutMs: 5000, message: 'socket left open' });
      } finally {
        await server.close();
      }
    });

    it('reconnect attempts are bounded the same way', async () => {
      // A proxy to RabbitMQ that, once switched, drops its connections and then accepts without
      // answering: every reconnect attempt must fail on the bound and be logged.
      const target = new URL(amqpUrl);
      let silent = false;
      const pairs = new Set<net.Socket>();
      const proxy = net.createServer((client) => {
        pairs.add(client);
        client.on('error', () => {});
        client.on('close', () => pairs.delete(client));
        if (silent) return;
        const upstream = net.connect(Number(target.port || 5672), target.hostname);
        pairs.add(upstream);
        upstream.on('error', () => client.destroy());
        upstream.on('close', () => {
          pairs.delete(upstream);
          client.destroy();
        });
        client.on('close', () => upstream.destroy());
        client.pipe(upstream).pipe(client);
      });
      await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
      const { port } = proxy.address() as net.AddressInfo;
      const log = recordingLogger();
      const proxied = new URL(amqpUrl);
      proxied.host = `127.0.0.1:${port}`;
      const viaProxy = await connect(proxied.href, {
        logger: log,
        rabbitmq: { connectTimeoutMs: 300, reconnect: { initialMs: 50, maxMs: 200 } },
      });
      try {
        silent = true;
        for (const s of pairs) s.destroy();
        await waitFor(
          () =>
            log.lines.some(
              (l) =>
                l.level === 'warn' &&
                l.message.includes('reconnect attempt failed') &&
                inspect(l.fields).includes('ETIMEDOUT'),
            ),
          { timeoutMs: 15_000, message: 'no reconnect attempt ended on the bound' },
        );
        silent = false;
      } finally {
        await viaProxy.close();
        for (const s of pairs) s.destroy();
        await new Promise<void>((resolve) => proxy.close(() => resolve()));
      }
    });
  });

  /**
   * Node reports a rejection nobody handled at the end of the macrotask in which it became
   * unhandled, once that task's microtasks have drained ('unhandledRejection' is emitted from
   * the same tick processing). Each setImmediate turn is a macrotask whose end runs that
   * processing, so after a few of them every rejection of a promise already settled, or settled
   * by what those turns ran, has been reported.
   */
  async function unhandledRejectionsReported(): Promise<void> {
    for (let turn = 0; turn < 3; turn++) await new Promise((resolve) => setImmediate(resolve));
  }

  describe('sendOneWay never crashes', () => {
    it('does not throw and raises no unhandled rejection when onError throws', async () => {
      const unhandled: unknown[] = [];
      const onUnhandled = (reason: unknown) => unhandled.push(reason);
      process.on('unhandledRejection', onUnhandled);
      const log = recordingLogger();
      const own = await connect(amqpUrl, { logger: log });
      try {
        const topic = uniqueName('oneway-throws');
        const producer = own.producer({
          onError: () => {
            throw new Error('onError blew up');
          },
        });
        expect(() => producer.sendOneWay({ topic, body: 1, id: 'i'.repeat(300) })).not.toThrow();
        expect(() => producer.sendOneWay(null as never)).not.toThrow();
        await waitFor(() => log.lines.filter((l) => l.message.includes('onError threw')).length === 2, {
          timeoutMs: 5000,
          message: 'the throwing onError was not logged',
        });
        await unhandledRejectionsReported();
        expect(unhandled).toEqual([]);
      } finally {
        process.off('unhandledRejection', onUnhandled);
        await own.close();
      }
    });
  });

  describe('background failures are logged', () => {
    it('a dropped connection is logged at warn with its reply code, and its return at info', async () => {
      const log = recordingLogger();
      const name = uniqueName('dropped');
      const own = await connect(amqpUrl, { logger: log, rabbitmq: { connectionName: name } });
      try {
        const closeServerSide = await serverSideCloser(amqpUrl, name, 'consuming');
        await closeServerSide();
        const lost = await waitFor(
          () => log.lines.find((l) => l.level === 'warn' && l.message.includes('connection lost')),
          { timeoutMs: 15_000, message: 'the lost connection was not logged' },
        );
        expect(lost.fields).toMatchObject({ connection: name, code: 320 });
        await waitFor(() => log.lines.some((l) => l.level === 'info' && l.message.includes('is back')), {
          timeoutMs: 15_000,
          message: 'the reconnect was not logged',
        });
      } finally {
        await own.close();
      }
    });

    it('a retry copy RabbitMQ cannot carry is logged at warn, not swallowed', async () => {
      const log = recordingLogger();
      const own = await connect(amqpUrl, { logger: log });
      const topic = uniqueName('copy-too-big');
      try {
        await own.ensureTopic(topic);
        let attempts = 0;
        const sub = await own.subscribe(
          { topic, group: 'g', order: 'concurrent', retry: { attempts: 3, backoff: { initialMs: 10 } } },
          async () => {
            attempts++;
            throw new Error('fail so that a retry copy is published');
          },
        );
        try {
          // Just under the producer's limit: the retry copy's extra headers take it over.
          await own.producer().send({ topic, body: 1, headers: { big: 'v'.repeat(65_536 - 300) } });
          const line = await waitFor(
            () => log.lines.find((l) => l.level === 'warn' && l.message.includes('copy was not published')),
            { timeoutMs: 15_000, message: 'the failed copy was not logged' },
          );
          expect(line.fields).toMatchObject({ code: 'PUBLISH' });
          expect(attempts).toBeGreaterThan(0);
        } finally {
          await sub.close({ timeoutMs: 1000 });
        }
      } finally {
        await own.close();
      }
    });
  });

  describe('connection failures that will not fix themselves', () => {
    const withPassword = (password: string, path = '') => {
      const url = new URL(amqpUrl);
      url.password = password;
      url.pathname = path;
      return url.href;
    };

    it('a wrong password is a non-retriable ConnectionError, and the password shows nowhere', async () => {
      const log = recordingLogger();
      const error = await mqRejection(connect(withPassword('s3cr3t-Pw'), { logger: log }));
      expect(error.code).toBe('CONNECTION');
      expect(error.retriable).toBe(false);
      expect(error.message).toContain('ACCESS_REFUSED');
      const everything = `${inspect(error, { depth: 10 })}\n${error.stack}\n${inspect(log.lines, { depth: 10 })}`;
      expect(everything).not.toContain('s3cr3t-Pw');
      expect(error.message).toContain('***');
    });

    it('an unknown virtual host is a non-retriable ConnectionError naming it', async () => {
      const vhost = uniqueName('no-such-vhost');
      const error = await mqRejection(
        connect(withPassword('guest', `/${vhost}`), { logger: recordingLogger() }),
      );
      expect(error.code).toBe('CONNECTION');
      expect(error.retriable).toBe(false);
      expect(error.message).toContain(vhost);
      expect(error.message).toContain('NOT_ALLOWED');
    });

    it('a malformed %-escape in the credentials is a ConfigError naming the url', async () => {
      const error = await mqRejection(
        connect('amqp://guest:s3cr3t%zz@127.0.0.1:5672', { logger: recordingLogger() }),
      );
      expect(error.code).toBe('CONFIG');
      expect((error as MqError & { field: string }).field).toBe('url');
      expect(inspect(error, { depth: 10 })).not.toContain('s3cr3t');
    });

    it('a refused port stays retriable', async () => {
      const server = await silentServer();
      const { port } = server;
      await server.close(); // nothing listens there now
      const error = await mqRejection(
        connect(`amqp://guest:s3cr3t-Pw@127.0.0.1:${port}`, { logger: recordingLogger() }),
      );
      expect(error.code).toBe('CONNECTION');
      expect(error.retriable).toBe(true);
      expect(inspect(error, { depth: 10 })).not.toContain('s3cr3t-Pw');
    });

    it('a certificate the client does not trust is a non-retriable ConnectionError', async () => {
      const { port, close } = await selfSignedTlsServer();
      try {
        const error = await mqRejection(
          connect(`amqps://guest:s3cr3t-Pw@127.0.0.1:${port}`, { logger: recordingLogger() }),
        );
        expect(error.code).toBe('CONNECTION');
        expect(error.retriable).toBe(false);
        expect(error.message).toContain('TLS');
        expect(inspect(error, { depth: 10 })).not.toContain('s3cr3t-Pw');
      } finally {
        await close();
      }
    });
  });
});
