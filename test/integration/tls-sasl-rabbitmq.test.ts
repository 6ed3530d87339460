import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../../src/index.js';
import { Collector, uniqueName, waitFor } from '../../src/testing/index.js';
import { type PrivateRabbitNode, startPrivateRabbitNode } from '../infra/rabbitmq-node.js';
import { makeTestCerts, type TestCerts } from '../infra/tls-certs.js';
import { refusedConnect, roundTrip, textLogger } from './tls-helpers.js';

// A RabbitMQ node of its own with a TLS listener (certificates from a private CA made for this
// run) that verifies client certificates when given (verify_peer): TLS alone and mutual TLS
// both work, and a client certificate from another CA is refused.
describe('rabbitmq: TLS on a real listener (own node)', () => {
  let certs: TestCerts;
  let node: PrivateRabbitNode;
  let hostPort: string;
  // Unique per run, so finding one anywhere in an error or a log line is a leak, never a coincidence.
  const password = `pw-${randomUUID()}`;
  const wrongPw = `wrong-${randomUUID()}`;
  let url: string;

  beforeAll(async () => {
    certs = await makeTestCerts();
    node = await startPrivateRabbitNode({
      tls: { caFile: certs.ca.certFile, certFile: certs.server.certFile, keyFile: certs.server.keyFile },
    });
    if (node.tlsUrl === undefined) throw new Error('startPrivateRabbitNode: no TLS listener');
    hostPort = new URL(node.tlsUrl).host;
    await node.ctl(['add_user', 'alice', password]);
    await node.ctl(['set_permissions', '-p', '/', 'alice', '.*', '.*', '.*']);
    url = `amqps://alice:${encodeURIComponent(password)}@${hostPort}`;
  }, 120_000);

  afterAll(async () => {
    await node?.stop();
    await certs?.remove();
  }, 60_000);

  const q = (params: Record<string, string>): string => new URLSearchParams(params).toString();

  describe('connects, sends and receives', () => {
    it('amqps:// with the CA from the URL (tlsCaFile)', async () => {
      await roundTrip(`${url}?${q({ tlsCaFile: certs.ca.certFile })}`, {}, password);
    }, 60_000);

    it('amqps:// with the CA and the name localhost from options (rabbitmq.tls.ca, servername)', async () => {
      await roundTrip(url, { rabbitmq: { tls: { ca: certs.ca.cert, servername: 'localhost' } } }, password);
    }, 60_000);

    it('mutual TLS from the URL (tlsCertFile, tlsKeyFile): the broker sees the client certificate', async () => {
      const broker = await connect(
        `${url}?${q({ tlsCaFile: certs.ca.certFile, tlsCertFile: certs.client.certFile, tlsKeyFile: certs.client.keyFile })}`,
      );
      try {
        const connections = await node.ctl(['list_connections', 'user', 'peer_cert_subject']);
        expect(connections).toMatch(/alice\s+CN=mqkit-client/);
      } finally {
        await broker.close();
      }
    }, 60_000);

    it('mutual TLS from options, the URL giving the CA: options and URL combine, the broker sees the client certificate', async () => {
      const options = { rabbitmq: { tls: { cert: certs.client.cert, key: certs.client.key } } };
      const target = `${url}?${q({ tlsCaFile: certs.ca.certFile })}`;
      // This node admits clients without a certificate too: only the subject it saw proves the cert was sent.
      const broker = await connect(target, options);
      try {
        const connections = await node.ctl(['list_connections', 'user', 'peer_cert_subject']);
        expect(connections).toMatch(/alice\s+CN=mqkit-client/);
      } finally {
        await broker.close();
      }
      await roundTrip(target, options, password);
    }, 60_000);
  });

  describe('refuses at once with a non-retriable ConnectionError naming the cause, and no secret anywhere', () => {
    it('a wrong password: authentication failed', async () => {
      await refusedConnect(
        `amqps://alice:${wrongPw}@${hostPort}?${q({ tlsCaFile: certs.ca.certFile })}`,
        {},
        /authentication failed/,
        wrongPw,
      );
    }, 30_000);

    it('a broker certificate from a CA the client does not trust: certificate not trusted', async () => {
      await refusedConnect(
        `${url}?${q({ tlsCaFile: certs.rogueCa.certFile })}`,
        {},
        /certificate not trusted/,
        password,
      );
    }, 30_000);

    it('a server name the certificate does not carry: hostname mismatch', async () => {
      await refusedConnect(
        url,
        { rabbitmq: { tls: { ca: certs.ca.cert, servername: 'other.example' } } },
        /hostname mismatch/,
        password,
      );
    }, 30_000);

    it('a client certificate from another CA: client certificate refused', async () => {
      await refusedConnect(
        `${url}?${q({ tlsCaFile: certs.ca.certFile, tlsCertFile: certs.rogueClient.certFile, tlsKeyFile: certs.rogueClient.keyFile })}`,
        {},
        /client certificate refused/,
        password,
      );
    }, 30_000);
  });

  describe('a listener that requires client certificates (fail_if_no_peer_cert, own node)', () => {
    let strict: PrivateRabbitNode;
    let strictUrl: string;

    beforeAll(async () => {
      strict = await startPrivateRabbitNode({
        tls: {
          caFile: certs.ca.certFile,
          certFile: certs.server.certFile,
          keyFile: certs.server.keyFile,
          clientCert: 'require',
        },
      });
      strictUrl = strict.tlsUrl ?? '';
    }, 120_000);

    afterAll(async () => {
      await strict?.stop();
    }, 60_000);

    // alice's password in the URL (the handshake fails before any login), so the checks that
    // it shows nowhere check a secret that was given.
    const aliceOnStrict = (): string => {
      const u = new URL(strictUrl);
      u.username = 'alice';
      u.password = encodeURIComponent(password);
      return u.href.replace(/\/$/, '');
    };

    it('with a client certificate: sends and receives', async () => {
      await roundTrip(strictUrl, {
        rabbitmq: { tls: { ca: certs.ca.cert, cert: certs.client.cert, key: certs.client.key } },
      });
    }, 60_000);

    it('after the node is killed and restarted, reconnects over mutual TLS and delivers again', async () => {
      const broker = await connect(
        `${strictUrl}?${q({ tlsCaFile: certs.ca.certFile, tlsCertFile: certs.client.certFile, tlsKeyFile: certs.client.keyFile })}`,
        { logger: textLogger().logger },
      );
      try {
        const topic = uniqueName('tls-restart');
        const got = new Collector<number>();
        await broker.subscribe({ topic, group: uniqueName('g') }, got.handler());
        const producer = broker.producer({ timeoutMs: 30_000 });
        await producer.send({ topic, body: 1 });
        await got.waitForCount(1, 20_000);
        await strict.kill();
        await strict.start();
        await producer.send({ topic, body: 2 });
        // At-least-once: 1 may come again (its ack may not have reached the node before the kill).
        await waitFor(() => got.deliveries.some((d) => d.body === 2), {
          timeoutMs: 30_000,
          message: () =>
            `the message sent after the restart never came (got ${got.deliveries.map((d) => d.body)})`,
        });
      } finally {
        await broker.close();
      }
    }, 90_000);

    it('without one: client certificate refused (TLS 1.3), a non-retriable ConnectionError', async () => {
      await refusedConnect(
        `${aliceOnStrict()}?${q({ tlsCaFile: certs.ca.certFile })}`,
        {},
        /client certificate refused/,
        password,
      );
    }, 30_000);

    it('without one on TLS 1.2, where the server only says handshake failure: the message names the likely cause', async () => {
      await refusedConnect(
        aliceOnStrict(),
        { rabbitmq: { tls: { ca: certs.ca.cert, maxVersion: 'TLSv1.2' } } },
        /TLS handshake failed: .*requires a client certificate/,
        password,
      );
    }, 30_000);
  });
});
