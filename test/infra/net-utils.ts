import { connect, createServer, type Server } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** The only host the test infrastructure binds to or connects to by default. */
export const LOOPBACK = '127.0.0.1';

/**
 * Reserves `count` distinct free TCP ports on `host` by listening on port 0,
 * then releases them all and returns the numbers. Another process could grab
 * a port before the caller binds it, which is acceptable for tests.
 *
 * @param count - how many ports to find
 * @param host - interface to probe; defaults to 127.0.0.1
 */
export async function freePorts(count: number, host: string = LOOPBACK): Promise<number[]> {
  const servers: Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < count; i++) {
      const server = createServer();
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, host, () => resolve());
      });
      const address = server.address();
      if (address === null || typeof address === 'string')
        throw new Error('freePorts: unexpected server address');
      ports.push(address.port);
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

/**
 * Tries one TCP connection and reports whether it was accepted.
 *
 * @param host - host to connect to
 * @param port - port to connect to
 * @param timeoutMs - connect timeout; defaults to 1000 ms
 */
export function tcpAnswers(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean): void => {
      socket.removeAllListeners();
      socket.on('error', () => {});
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * Polls `probe` until it resolves to true, or throws after `timeoutMs`.
 * A probe that throws counts as "not yet"; its last error message is kept
 * and appended to the timeout error.
 *
 * @param what - description used in the timeout error
 * @param probe - readiness check
 * @param options.timeoutMs - overall limit; defaults to 60 000 ms
 * @param options.intervalMs - pause between attempts; defaults to 250 ms
 * @param options.abort - checked before every attempt; a returned Error aborts the wait
 */
export async function waitUntil(
  what: string,
  probe: () => Promise<boolean>,
  options: { timeoutMs?: number; intervalMs?: number; abort?: () => Error | undefined } = {},
): Promise<void> {
  const { timeoutMs = 60_000, intervalMs = 250, abort } = options;
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  for (;;) {
    const aborted = abort?.();
    if (aborted) throw aborted;
    try {
      if (await probe()) return;
    } catch (err) {
      lastError = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() >= deadline) {
      throw new Error(
        `${what}: not ready within ${Math.round(timeoutMs / 1000)}s${lastError ? ` (last error: ${lastError})` : ''}`,
      );
    }
    await sleep(intervalMs);
  }
}

/** Splits `host:port` (IPv4 or host name) into its parts; the port defaults to `defaultPort`. */
export function parseHostPort(hostPort: string, defaultPort: number): { host: string; port: number } {
  const idx = hostPort.lastIndexOf(':');
  if (idx <= 0) return { host: hostPort, port: defaultPort };
  return { host: hostPort.slice(0, idx), port: Number(hostPort.slice(idx + 1)) || defaultPort };
}
