import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server } from 'node:tls';

/**
 * A TLS server on 127.0.0.1 with a throwaway self-signed certificate (made with `openssl`),
 * which no client trusts: it accepts the TLS handshake attempt and nothing else. Fails with one
 * line when `openssl` is missing, never skips.
 */
export async function selfSignedTlsServer(): Promise<{ port: number; close: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'mqkit-tls-'));
  let server: Server;
  try {
    const keyFile = join(dir, 'key.pem');
    const certFile = join(dir, 'cert.pem');
    try {
      execFileSync(
        'openssl',
        ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-days', '1'].concat([
          '-keyout',
          keyFile,
          '-out',
          certFile,
        ]),
        { stdio: 'ignore' },
      );
    } catch (error) {
      throw new Error(`the TLS tests need openssl to make a certificate: ${(error as Error).message}`);
    }
    server = createServer({ key: readFileSync(keyFile), cert: readFileSync(certFile) }, (socket) =>
      socket.on('error', () => {}),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  server.on('tlsClientError', () => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { port, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}
