import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { describe, expect, inject, it } from 'vitest';
import { connect, isMqError } from '../../src/index.js';
import { Collector, uniqueName } from '../../src/testing/index.js';

/** A TCP relay to the Kafka bootstrap address that can be switched off and on. */
class Relay {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  port = 0;

  constructor(
    private readonly host: string,
    private readonly targetPort: number,
  ) {}

  async open(): Promise<void> {
    const server = createServer((client) => {
      const upstream = tcpConnect(this.targetPort, this.host);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => {});
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.port = (server.address() as { port: number }).port;
    this.server = server;
  }

  /** Refuses new connections and cuts the open ones. */
  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((resolve) => this.server?.close(resolve));
    this.server = undefined;
  }
}

describe('kafka: a producer whose first connect fails', () => {
  it('connects again on a later send once the cluster answers', async () => {
    const [host = '127.0.0.1', port = '9092'] =
      (
        inject('kafkaUrl')
          .replace(/^kafka:\/\//, '')
          .split(',')[0] ?? ''
      )
        .split('/')[0]
        ?.split(':') ?? [];
    const relay = new Relay(host, Number(port));
    await relay.open();
    // Bootstrapping goes through the relay; the cluster then advertises its own address.
    const broker = await connect(`kafka://127.0.0.1:${relay.port}?logLevel=nothing`);
    try {
      const topic = uniqueName('outage');
      await broker.ensureTopic(topic, { partitions: 1 });
      await relay.close();
      const producer = broker.producer({ timeoutMs: 120_000 });
      // kafkajs retries the bootstrap for about 10 s, then gives up: a typed, retriable error.
      const failed = await producer.send({ topic, body: { n: 1 } }).catch((e: unknown) => e);
      expect(isMqError(failed) && failed.retriable, String(failed)).toBe(true);
      await relay.open();
      const sent = await producer.send({ topic, body: { n: 2 } });
      const got = new Collector<{ n: number }>();
      await broker.subscribe({ topic, group: uniqueName('g') }, got.handler());
      await got.waitForCount(1);
      expect(got.deliveries.map((d) => d.id)).toContain(sent.id);
    } finally {
      await relay.close();
      await broker.close();
    }
  }, 120_000);
});
