import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';

/**
 * What the proxy does with traffic:
 * - `pass`: forwards both ways.
 * - `refuse`: closes each new connection at once (as a listener that is gone); open ones pass.
 * - `stall`: accepts new connections and holds them (no upstream connection, no bytes), and
 *   holds the bytes of open ones in both directions; they flow again once the mode is `pass`.
 * - `latency`: forwards every chunk `latencyMs` late, in order.
 * - `drop-client-to-server` / `drop-server-to-client`: discards the bytes of one direction of
 *   every connection (a one-way black hole). A connection that lost bytes is broken (its stream
 *   has a hole), so it is closed when the mode goes back to `pass`, as a TCP stack would
 *   reset it.
 *
 * `cut()` closes every open connection at once, whatever the mode.
 */
export type ProxyMode =
  | 'pass'
  | 'refuse'
  | 'stall'
  | 'latency'
  | 'drop-client-to-server'
  | 'drop-server-to-client';

export interface ProxyStats {
  /** Connections accepted in all. */
  accepted: number;
  /** Connections closed at once by `refuse`. */
  refused: number;
  /** Connections closed by `cut()` or as broken after a drop. */
  cut: number;
  /** Bytes forwarded client → server and server → client. */
  up: number;
  down: number;
  /** Bytes discarded by a drop mode. */
  dropped: number;
  /** Bytes held now by `stall` (or not yet due under `latency`). */
  held: number;
  /** Open connections. */
  open: number;
}

interface Chunk {
  data: Buffer;
  due: number;
}

interface Direction {
  queue: Chunk[];
  timer: NodeJS.Timeout | undefined;
}

interface Pair {
  client: Socket;
  server: Socket | undefined;
  toServer: Direction;
  toClient: Direction;
  /** Bytes of this connection were dropped: its stream is broken. */
  broken: boolean;
  closed: boolean;
}

/**
 * A TCP proxy on 127.0.0.1 in front of one upstream listener, whose behaviour a test switches
 * at run time to inject network faults between a client and a broker. Not a performance tool:
 * it ignores back-pressure (the volumes of a test are small).
 */
export class FaultProxy {
  private server: Server | undefined;
  private readonly pairs = new Set<Pair>();
  private currentMode: ProxyMode = 'pass';
  private latency = 0;
  readonly stats: ProxyStats = {
    accepted: 0,
    refused: 0,
    cut: 0,
    up: 0,
    down: 0,
    dropped: 0,
    held: 0,
    open: 0,
  };
  /** The port the proxy listens on (after `start`). */
  port = 0;

  constructor(
    private upstreamPort: number,
    private readonly upstreamHost = '127.0.0.1',
  ) {}

  /** Listens on `port` (default: a free one) and resolves with it. */
  async start(port = 0): Promise<number> {
    const server = createServer((client) => this.accept(client));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address();
    this.port = typeof address === 'object' && address !== null ? address.port : 0;
    return this.port;
  }

  /** Points new connections at another upstream port (open ones keep theirs). */
  setUpstream(port: number): void {
    this.upstreamPort = port;
  }

  get mode(): ProxyMode {
    return this.currentMode;
  }

  /** Switches the mode; `latencyMs` applies to `latency`. */
  setMode(mode: ProxyMode, latencyMs = 0): void {
    this.currentMode = mode;
    this.latency = mode === 'latency' ? latencyMs : 0;
    if (mode === 'pass') {
      for (const pair of [...this.pairs]) {
        if (pair.broken) this.close(pair, true);
        else if (pair.server === undefined) this.connectUpstream(pair);
      }
    }
    for (const pair of this.pairs) {
      this.pump(pair, pair.toServer, 'up');
      this.pump(pair, pair.toClient, 'down');
    }
  }

  /** Closes every open connection now (both sides see the connection reset). */
  cut(): void {
    for (const pair of [...this.pairs]) this.close(pair, true);
  }

  async stop(): Promise<void> {
    this.cut();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    this.stats.accepted++;
    if (this.currentMode === 'refuse') {
      this.stats.refused++;
      client.on('error', () => {});
      client.resetAndDestroy();
      return;
    }
    const pair: Pair = {
      client,
      server: undefined,
      toServer: { queue: [], timer: undefined },
      toClient: { queue: [], timer: undefined },
      broken: false,
      closed: false,
    };
    this.pairs.add(pair);
    this.stats.open = this.pairs.size;
    client.setNoDelay(true);
    client.on('data', (data) => this.receive(pair, pair.toServer, 'up', data));
    client.on('error', () => this.close(pair, false));
    client.on('close', () => this.close(pair, false));
    if (this.currentMode !== 'stall') this.connectUpstream(pair);
  }

  private connectUpstream(pair: Pair): void {
    if (pair.closed || pair.server !== undefined) return;
    const server = tcpConnect({ host: this.upstreamHost, port: this.upstreamPort });
    pair.server = server;
    server.setNoDelay(true);
    server.on('data', (data) => this.receive(pair, pair.toClient, 'down', data));
    server.on('error', () => this.close(pair, false));
    server.on('close', () => this.close(pair, false));
    server.on('connect', () => this.pump(pair, pair.toServer, 'up'));
  }

  private receive(pair: Pair, direction: Direction, way: 'up' | 'down', data: Buffer): void {
    const mode = this.currentMode;
    if (
      (mode === 'drop-client-to-server' && way === 'up') ||
      (mode === 'drop-server-to-client' && way === 'down')
    ) {
      this.stats.dropped += data.length;
      pair.broken = true;
      return;
    }
    direction.queue.push({ data, due: Date.now() + this.latency });
    this.stats.held += data.length;
    this.pump(pair, direction, way);
  }

  /** Writes the chunks that are due, in order, unless stalled; schedules the next one. */
  private pump(pair: Pair, direction: Direction, way: 'up' | 'down'): void {
    if (pair.closed || this.currentMode === 'stall') return;
    const target = way === 'up' ? pair.server : pair.client;
    if (target === undefined || target.connecting) return;
    if (direction.timer) {
      clearTimeout(direction.timer);
      direction.timer = undefined;
    }
    const now = Date.now();
    while (direction.queue.length > 0) {
      const chunk = direction.queue[0] as Chunk;
      if (chunk.due > now && this.currentMode === 'latency') {
        direction.timer = setTimeout(() => this.pump(pair, direction, way), chunk.due - now);
        return;
      }
      direction.queue.shift();
      this.stats.held -= chunk.data.length;
      this.stats[way] += chunk.data.length;
      target.write(chunk.data);
    }
  }

  private close(pair: Pair, reset: boolean): void {
    if (pair.closed) return;
    pair.closed = true;
    if (reset) this.stats.cut++;
    for (const d of [pair.toServer, pair.toClient]) {
      if (d.timer) clearTimeout(d.timer);
      for (const chunk of d.queue) this.stats.held -= chunk.data.length;
      d.queue.length = 0;
    }
    this.pairs.delete(pair);
    this.stats.open = this.pairs.size;
    for (const socket of [pair.client, pair.server]) {
      if (socket === undefined || socket.destroyed) continue;
      socket.on('error', () => {});
      try {
        if (reset) socket.resetAndDestroy();
        else socket.destroy();
      } catch {
        socket.destroy(); // not connected yet: nothing to reset
      }
    }
  }
}
