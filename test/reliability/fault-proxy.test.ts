import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { waitFor } from '../../src/testing/index.js';
import { FaultProxy } from './fault-proxy.js';

/** An echo server that also records what it received. */
async function echoServer(): Promise<{ server: Server; port: number; received: () => string }> {
  let received = '';
  const server = createServer((socket) => {
    socket.on('error', () => {});
    socket.on('data', (data) => {
      received += data.toString();
      socket.write(data);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return {
    server,
    port: typeof address === 'object' && address ? address.port : 0,
    received: () => received,
  };
}

/** A client socket that records what it got back and whether it was closed. */
async function client(port: number): Promise<{ socket: Socket; got: () => string; closed: () => boolean }> {
  let got = '';
  let closed = false;
  const socket = tcpConnect({ host: '127.0.0.1', port });
  socket.on('data', (data) => {
    got += data.toString();
  });
  socket.on('error', () => {});
  socket.on('close', () => {
    closed = true;
  });
  await new Promise<void>((resolve) => {
    socket.once('connect', () => resolve());
    socket.once('close', () => resolve());
  });
  return { socket, got: () => got, closed: () => closed };
}

describe('fault proxy (against a local echo server)', () => {
  let echo: Awaited<ReturnType<typeof echoServer>>;
  let proxy: FaultProxy;
  const sockets: Socket[] = [];

  beforeEach(async () => {
    echo = await echoServer();
    proxy = new FaultProxy(echo.port);
    await proxy.start();
  });

  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    await proxy.stop();
    await new Promise<void>((resolve) => echo.server.close(() => resolve()));
  });

  const open = async () => {
    const c = await client(proxy.port);
    sockets.push(c.socket);
    return c;
  };

  it('pass: forwards both ways', async () => {
    const c = await open();
    c.socket.write('hello');
    await waitFor(() => c.got() === 'hello');
    expect(echo.received()).toBe('hello');
    expect(proxy.stats).toMatchObject({ up: 5, down: 5, accepted: 1, open: 1 });
  });

  it('cut: closes every open connection; new ones pass', async () => {
    const a = await open();
    const b = await open();
    await waitFor(() => proxy.stats.open === 2);
    proxy.cut();
    await waitFor(() => a.closed() && b.closed());
    const c = await open();
    c.socket.write('again');
    await waitFor(() => c.got() === 'again');
    expect(proxy.stats.cut).toBe(2);
  });

  it('refuse: closes new connections at once, open ones still pass', async () => {
    const before = await open();
    await waitFor(() => proxy.stats.open === 1);
    proxy.setMode('refuse');
    const refused = await open();
    await waitFor(() => refused.closed());
    expect(proxy.stats.refused).toBe(1);
    before.socket.write('still');
    await waitFor(() => before.got() === 'still');
    proxy.setMode('pass');
    const after = await open();
    after.socket.write('ok');
    await waitFor(() => after.got() === 'ok');
  });

  it('stall: holds the bytes of open and new connections, and lets them through on pass', async () => {
    const old = await open();
    await waitFor(() => proxy.stats.open === 1);
    proxy.setMode('stall');
    const fresh = await open(); // accepted (the TCP handshake completes) but held
    old.socket.write('a');
    fresh.socket.write('b');
    await waitFor(() => proxy.stats.held === 2);
    expect(echo.received()).toBe(''); // the proxy holds both bytes: none reached the server
    expect(old.got() + fresh.got()).toBe('');
    expect(old.closed() || fresh.closed()).toBe(false);
    proxy.setMode('pass');
    await waitFor(() => old.got() === 'a' && fresh.got() === 'b');
    expect(proxy.stats.held).toBe(0);
  });

  it('latency: forwards in order, no earlier than the latency', async () => {
    proxy.setMode('latency', 150);
    const c = await open();
    const t0 = Date.now();
    c.socket.write('1');
    c.socket.write('2');
    c.socket.write('3');
    await waitFor(() => c.got() === '123');
    // Two hops (there and back), each held at least 150 ms: a lower bound, never flaky.
    expect(Date.now() - t0).toBeGreaterThanOrEqual(300);
  });

  it('drop client->server: the server gets nothing, the connection stays open, then is reset on pass', async () => {
    const c = await open();
    await waitFor(() => proxy.stats.open === 1);
    proxy.setMode('drop-client-to-server');
    c.socket.write('lost');
    await waitFor(() => proxy.stats.dropped === 4);
    expect(echo.received()).toBe('');
    expect(c.closed()).toBe(false);
    proxy.setMode('pass');
    await waitFor(() => c.closed()); // its stream has a hole: reset, as TCP would
    const d = await open();
    d.socket.write('x');
    await waitFor(() => d.got() === 'x');
  });

  it('drop server->client: the server gets the bytes, the client not the answer', async () => {
    const c = await open();
    await waitFor(() => proxy.stats.open === 1);
    proxy.setMode('drop-server-to-client');
    c.socket.write('ping');
    await waitFor(() => proxy.stats.dropped === 4);
    expect(echo.received()).toBe('ping');
    expect(c.got()).toBe('');
  });
});
