import { createServer, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { connect, isMqError } from '../../src/index.js';

async function refused(url: string, options?: object): Promise<unknown> {
  try {
    const broker = await connect(url, options === undefined ? undefined : { rocketmq: options });
    await broker.close();
    return undefined;
  } catch (error) {
    return error;
  }
}

describe('rocketmq:// options', () => {
  it('refuses unknown options and query parameters, and bad values, naming the field', async () => {
    const cases: [string, object | undefined, string][] = [
      ['rocketmq://127.0.0.1:8081', { nameserver: 'x' }, 'rocketmq.nameserver'],
      ['rocketmq://127.0.0.1:8081?nameserver=x', undefined, 'rocketmq:// query parameter nameserver'],
      ['rocketmq://127.0.0.1:8081?namesrv=nohost', undefined, 'rocketmq:// query parameter namesrv'],
      ['rocketmq://127.0.0.1:8081', { namesrv: 'a b:1' }, 'rocketmq.namesrv'],
      ['rocketmq://127.0.0.1:8081', { awaitMs: 5 }, 'rocketmq.awaitMs'],
      ['rocketmq://127.0.0.1:8081', { invisibleMs: 9999 }, 'rocketmq.invisibleMs'],
      ['rocketmq://127.0.0.1:8081?namesrv=127.0.0.1:9876', { namespace: 'tenant' }, 'rocketmq.namespace'],
      ['rocketmq://127.0.0.1:8081', { namespace: 'tenant', namesrv: '127.0.0.1:9876' }, 'rocketmq.namespace'],
      ['rocketmq://127.0.0.1:8081', { invisibleMs: 43_200_001 }, 'rocketmq.invisibleMs'],
      ['rocketmq://127.0.0.1:8081?awaitMs=1e3', undefined, 'rocketmq:// query parameter awaitMs'],
    ];
    for (const [url, options, field] of cases) {
      const error = await refused(url, options);
      expect(isMqError(error, 'CONFIG'), `${field}: ${String(error)}`).toBe(true);
      expect((error as { field: string }).field).toBe(field);
    }
  });

  it('keeps the secret of the URL out of errors', async () => {
    const broker = await connect('rocketmq://ak:s3cr3t-value@127.0.0.1:1?namesrv=127.0.0.1:1', {
      rocketmq: { requestTimeoutMs: 500 },
    });
    try {
      const error = await broker.ensureTopic('t').catch((e: unknown) => e);
      expect(isMqError(error, 'CONNECTION')).toBe(true);
      expect(String((error as Error).message)).not.toContain('s3cr3t-value');
      const sent = await broker
        .producer()
        .send({ topic: 't', body: 1 })
        .catch((e: unknown) => e);
      expect(isMqError(sent)).toBe(true);
      expect(JSON.stringify({ m: (sent as Error).message })).not.toContain('s3cr3t-value');
    } finally {
      await broker.close();
    }
  });

  it('a send the proxy never answers rejects with a retriable TimeoutError after producer timeoutMs', async () => {
    // Accepts connections and never answers: gRPC calls hang until their deadline.
    const sockets: Socket[] = [];
    const server = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    // The client's own deadline far beyond the test's timeout: only the producer's can end it.
    const broker = await connect(`rocketmq://127.0.0.1:${port}`, { rocketmq: { requestTimeoutMs: 600_000 } });
    try {
      const error = await broker
        .producer({ timeoutMs: 300 })
        .send({ topic: 't', body: 1 })
        .catch((e: unknown) => e);
      expect(isMqError(error, 'TIMEOUT'), String(error)).toBe(true);
      expect((error as { retriable: boolean }).retriable).toBe(true);
    } finally {
      for (const s of sockets) s.destroy();
      server.close();
      await broker.close();
    }
  });
});
