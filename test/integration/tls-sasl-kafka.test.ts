import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../../src/index.js';
import { Collector, uniqueName, waitFor } from '../../src/testing/index.js';
import { type KafkaServer, startKafka } from '../infra/kafka.js';
import { makeTestCerts, type TestCerts } from '../infra/tls-certs.js';
import { mqRejection } from './spies.js';
import { refusedConnect, roundTrip, textLogger } from './tls-helpers.js';

// A Kafka node of its own with the listeners SSL (mutual TLS required), SASL_SSL (PLAIN,
// SCRAM-SHA-256, SCRAM-SHA-512) and WRONGNAME (a certificate for another host), certificates
// from a private CA made for this run, SCRAM users created by the storage format.
describe('kafka: TLS and SASL on real listeners (own node)', () => {
  let certs: TestCerts;
  let server: KafkaServer;
  let ssl: string;
  let saslSsl: string;
  let wrongName: string;
  // Unique per run, so finding one anywhere in an error or a log line is a leak, never a coincidence.
  const plainPw = `plain-${randomUUID()}`;
  const scram256Pw = `s256-${randomUUID()}`;
  const scram512Pw = `s512-${randomUUID()}`;
  const wrongPw = `wrong-${randomUUID()}`;

  beforeAll(async () => {
    certs = await makeTestCerts();
    server = await startKafka({
      security: {
        caFile: certs.ca.certFile,
        serverBundle: await certs.bundle(certs.server),
        wrongNameBundle: await certs.bundle(certs.wrongName),
        plainUsers: { alice: plainPw },
        scramUsers: [
          { mechanism: 'SCRAM-SHA-256', name: 'bob', password: scram256Pw },
          { mechanism: 'SCRAM-SHA-512', name: 'carol', password: scram512Pw },
        ],
      },
    });
    const secure = server.secure;
    if (secure === undefined) throw new Error('startKafka: no TLS listeners');
    ({ ssl, saslSsl, wrongName } = secure);
  }, 120_000);

  afterAll(async () => {
    await server?.stop();
    await certs?.remove();
  }, 60_000);

  const q = (params: Record<string, string>): string => new URLSearchParams(params).toString();
  const keyLine = (pem: string): string => {
    const line = pem.split('\n')[1] ?? '';
    expect(line.length).toBeGreaterThan(40);
    return line;
  };

  describe('connects, sends and receives', () => {
    it('SASL_SSL with PLAIN, everything from the URL (user info, saslMechanism, tlsCaFile); no password in debug logs', async () => {
      await roundTrip(
        `kafka://alice:${encodeURIComponent(plainPw)}@${saslSsl}?${q({ saslMechanism: 'plain', tlsCaFile: certs.ca.certFile, logLevel: 'debug' })}`,
        {},
        plainPw,
      );
    }, 60_000);

    it('SASL_SSL with SCRAM-SHA-256, everything from options (kafka.ssl.ca, kafka.sasl)', async () => {
      await roundTrip(
        `kafka://${saslSsl}`,
        {
          kafka: {
            ssl: { ca: certs.ca.cert },
            sasl: { mechanism: 'scram-sha-256', username: 'bob', password: scram256Pw },
            logLevel: 'debug',
          },
        },
        scram256Pw,
      );
    }, 60_000);

    it('SASL_SSL with SCRAM-SHA-512 from the URL, verifying the name localhost (tlsServername)', async () => {
      await roundTrip(
        `kafka://carol:${encodeURIComponent(scram512Pw)}@${saslSsl}?${q({
          saslMechanism: 'scram-sha-512',
          ssl: 'true',
          tlsCaFile: certs.ca.certFile,
          tlsServername: 'localhost',
          logLevel: 'debug',
        })}`,
        {},
        scram512Pw,
      );
    }, 60_000);

    it('SSL with mutual TLS: client certificate and key from the URL (tlsCertFile, tlsKeyFile)', async () => {
      await roundTrip(
        `kafka://${ssl}?${q({ tlsCaFile: certs.ca.certFile, tlsCertFile: certs.client.certFile, tlsKeyFile: certs.client.keyFile })}`,
      );
    }, 60_000);

    it('SSL with mutual TLS from options, over a URL that only says ssl=true', async () => {
      await roundTrip(`kafka://${ssl}?ssl=true`, {
        kafka: { ssl: { ca: certs.ca.cert, cert: certs.client.cert, key: certs.client.key } },
      });
    }, 60_000);
  });

  it('after the node is killed and restarted, reconnects over SASL_SSL with SCRAM and delivers again', async () => {
    const broker = await connect(
      `kafka://carol:${encodeURIComponent(scram512Pw)}@${saslSsl}?${q({ saslMechanism: 'scram-sha-512', tlsCaFile: certs.ca.certFile })}`,
      // A short session lets the group settle sooner after the restart (this test took 35 s with the default 30 s, 18 s with 6 s).
      { logger: textLogger().logger, kafka: { consumer: { sessionTimeoutMs: 6000 } } },
    );
    try {
      const topic = uniqueName('tls-restart');
      await broker.ensureTopic(topic);
      const got = new Collector<number>();
      await broker.subscribe({ topic, group: uniqueName('g'), startFrom: 'earliest' }, got.handler());
      const producer = broker.producer({ timeoutMs: 60_000 });
      await producer.send({ topic, body: 1 });
      await got.waitForCount(1, 20_000);
      await server.restartNode();
      await producer.send({ topic, body: 2 });
      // At-least-once: 1 may come again (its commit may not have reached the node before the kill).
      await waitFor(() => got.deliveries.some((d) => d.body === 2), {
        timeoutMs: 60_000,
        message: () =>
          `the message sent after the restart never came (got ${got.deliveries.map((d) => d.body)})`,
      });
    } finally {
      await broker.close();
    }
  }, 120_000);

  it('TLS without SASL credentials on the SASL_SSL listener: connect fails at once, naming what is missing', async () => {
    // Kafka answers the version handshake before any login, so connect must ask for more to notice.
    const error = await mqRejection(connect(`kafka://${saslSsl}?${q({ tlsCaFile: certs.ca.certFile })}`));
    expect(error.code).toBe('CONNECTION');
    // Also what a broker shutting down mid-handshake looks like, so it stays retriable.
    expect(error.retriable).toBe(true);
    expect(error.message).toMatch(/closed the connection.*needs a user and password/);
    expect(error.message).not.toMatch(/needs ssl=true/);
  }, 30_000);

  it('SASL credentials without TLS on the SASL_SSL listener: connect fails, hinting at ssl only', async () => {
    const error = await mqRejection(connect(`kafka://alice:${plainPw}@${saslSsl}`));
    expect(error.code).toBe('CONNECTION');
    expect(error.message).toMatch(/closed the connection.*needs ssl=true/);
    expect(error.message).not.toMatch(/needs a user and password/);
    expect(error.message).not.toContain(plainPw);
  }, 30_000);

  describe('refuses at once with a non-retriable ConnectionError naming the cause, and no secret anywhere', () => {
    it('a wrong PLAIN password: authentication failed', async () => {
      await refusedConnect(
        `kafka://alice:${wrongPw}@${saslSsl}?${q({ tlsCaFile: certs.ca.certFile })}`,
        {},
        /authentication failed \(SASL PLAIN, user 'alice'\)/,
        wrongPw,
      );
    }, 30_000);

    it('a wrong SCRAM-SHA-256 password: authentication failed', async () => {
      await refusedConnect(
        `kafka://${saslSsl}`,
        {
          kafka: {
            ssl: { ca: certs.ca.cert },
            sasl: { mechanism: 'scram-sha-256', username: 'bob', password: wrongPw },
          },
        },
        /authentication failed \(SASL SCRAM-SHA-256, user 'bob'\)/,
        wrongPw,
      );
    }, 30_000);

    it('a wrong SCRAM-SHA-512 password: authentication failed', async () => {
      await refusedConnect(
        `kafka://carol:${wrongPw}@${saslSsl}?${q({ saslMechanism: 'scram-sha-512', tlsCaFile: certs.ca.certFile })}`,
        {},
        /authentication failed \(SASL SCRAM-SHA-512, user 'carol'\)/,
        wrongPw,
      );
    }, 30_000);

    it('a broker certificate from a CA the client does not trust: certificate not trusted', async () => {
      await refusedConnect(
        `kafka://alice:${plainPw}@${saslSsl}?${q({ tlsCaFile: certs.rogueCa.certFile })}`,
        {},
        /certificate not trusted/,
        plainPw,
      );
    }, 30_000);

    it('a broker certificate without the name 127.0.0.1: hostname mismatch', async () => {
      await refusedConnect(
        `kafka://alice:${plainPw}@${wrongName}?${q({ tlsCaFile: certs.ca.certFile })}`,
        {},
        /hostname mismatch/,
        plainPw,
      );
    }, 30_000);

    it('a server name the certificate does not carry (tlsServername): hostname mismatch', async () => {
      await refusedConnect(
        `kafka://alice:${plainPw}@${saslSsl}?${q({ tlsCaFile: certs.ca.certFile, tlsServername: 'other.example' })}`,
        {},
        /hostname mismatch/,
        plainPw,
      );
    }, 30_000);

    it('no client certificate on the mutual-TLS listener: client certificate refused', async () => {
      await refusedConnect(
        `kafka://alice:${plainPw}@${ssl}?${q({ tlsCaFile: certs.ca.certFile })}`,
        {},
        /client certificate refused/,
        plainPw,
      );
    }, 30_000);

    it('a client certificate from another CA: client certificate refused', async () => {
      await refusedConnect(
        `kafka://${ssl}`,
        { kafka: { ssl: { ca: certs.ca.cert, cert: certs.rogueClient.cert, key: certs.rogueClient.key } } },
        /client certificate refused/,
        // A line of the key's body: the key itself must show nowhere.
        keyLine(certs.rogueClient.key),
      );
    }, 30_000);
  });
});
