import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { RemotingClient } from '../../src/adapters/rocketmq/remoting.js';
import { waitFor } from '../../src/testing/index.js';

/** A TCP server that answers each request frame with what `reply` returns (or nothing). */
async function fakeServer(reply: (opaque: number) => Buffer | undefined): Promise<{
  server: Server;
  address: string;
  sockets: Set<Socket>;
}> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.on('data', (chunk) => {
      const header = JSON.parse(chunk.subarray(8).toString('utf8')) as { opaque: number };
      const answer = reply(header.opaque);
      if (answer !== undefined) socket.write(answer);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return { server, address: `127.0.0.1:${port}`, sockets };
}

function frame(header: Buffer, declaredLength?: number): Buffer {
  const out = Buffer.alloc(8 + header.length);
  out.writeUInt32BE(declaredLength ?? 4 + header.length, 0);
  out.writeUInt32BE(header.length, 4);
  header.copy(out, 8);
  return out;
}

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

describe('rocketmq remoting client', () => {
  const cases: [string, (opaque: number) => Buffer][] = [
    ['a frame shorter than its header length field', () => Buffer.from([0, 0, 0, 2, 0, 0])],
    ['a header that is not JSON', () => frame(Buffer.from('{not json'))],
    ['a header length beyond the frame', () => Buffer.from([0, 0, 0, 6, 0, 0, 0, 100, 0x7b, 0x7d])],
    ['a frame over 16 MiB', () => Buffer.from([0x40, 0, 0, 0, 0, 0, 0, 0])],
    ['a JSON header that is null', () => frame(Buffer.from('null'))],
  ];
  for (const [name, reply] of cases)
    it(`fails the request and closes the connection on ${name}, without an uncaught exception`, async () => {
      const { server, address, sockets } = await fakeServer(reply);
      servers.push(server);
      const client = new RemotingClient(address, 5000);
      try {
        await expect(client.request(105)).rejects.toThrow(/unreadable response/);
        await waitFor(() => sockets.size === 0, { timeoutMs: 5000 });
      } finally {
        client.close();
      }
    });

  it('a request that times out closes its connection; the next one opens another', async () => {
    let answer = false;
    const { server, address, sockets } = await fakeServer((opaque) =>
      answer ? frame(Buffer.from(JSON.stringify({ code: 0, opaque }))) : undefined,
    );
    servers.push(server);
    const client = new RemotingClient(address, 300);
    try {
      await expect(client.request(105)).rejects.toThrow(/no answer/);
      await waitFor(() => sockets.size === 0, { timeoutMs: 5000 });
      answer = true;
      expect((await client.request(105)).code).toBe(0);
    } finally {
      client.close();
    }
  });
});
