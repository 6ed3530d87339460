import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { resolveKafkaOptions } from '../../src/adapters/kafka/options.js';
import { tlsFailure } from '../../src/core/tls.js';
import { connect, isMqError } from '../../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'mqkit-tls-unit-'));
const caFile = join(dir, 'ca.pem');
const certFile = join(dir, 'client.pem');
const keyFile = join(dir, 'client.key');
writeFileSync(caFile, 'CA PEM');
writeFileSync(certFile, 'CERT PEM');
writeFileSync(keyFile, 'KEY PEM');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function configField(call: () => unknown): Promise<string> {
  let error: unknown;
  try {
    await call();
  } catch (e) {
    error = e;
  }
  expect(isMqError(error, 'CONFIG'), String(error)).toBe(true);
  return (error as { field: string }).field;
}

const kafka = (url: string, options = {}) => resolveKafkaOptions(new URL(url), options).client;

describe('kafka TLS settings', () => {
  it('ssl stays off, or true with Node defaults, when no TLS file is given', () => {
    expect(kafka('kafka://h:9093').ssl).toBe(false);
    expect(kafka('kafka://h:9093?ssl=true').ssl).toBe(true);
    expect(kafka('kafka://h:9093', { ssl: true }).ssl).toBe(true);
  });

  it('reads tlsCaFile, tlsCertFile, tlsKeyFile and tlsServername from the URL, which turn TLS on', () => {
    const ssl = kafka(
      `kafka://h:9093?tlsCaFile=${caFile}&tlsCertFile=${certFile}&tlsKeyFile=${keyFile}&tlsServername=kafka.internal`,
    ).ssl as Record<string, unknown>;
    expect(String(ssl.ca)).toBe('CA PEM');
    expect(String(ssl.cert)).toBe('CERT PEM');
    expect(String(ssl.key)).toBe('KEY PEM');
    expect(ssl.servername).toBe('kafka.internal');
  });

  it("takes tls.connect options as kafka.ssl, each key over the URL's", () => {
    const ssl = kafka(`kafka://h:9093?tlsCaFile=${caFile}&tlsServername=a`, {
      ssl: { servername: 'b', cert: 'C', key: 'K' },
    }) as { ssl: Record<string, unknown> };
    expect(String(ssl.ssl.ca)).toBe('CA PEM');
    expect(ssl.ssl).toMatchObject({ servername: 'b', cert: 'C', key: 'K' });
  });

  it('refuses contradictions, unknown keys, bad values and unreadable files, naming the field', async () => {
    const cases: [() => unknown, string][] = [
      [() => kafka(`kafka://h:9093?ssl=false&tlsCaFile=${caFile}`), 'kafka:// query parameter ssl'],
      [() => kafka(`kafka://h:9093?tlsCaFile=${caFile}`, { ssl: false }), 'kafka.ssl'],
      [() => kafka('kafka://h:9093?tlsCaFile=/no/such/ca.pem'), 'kafka:// query parameter tlsCaFile'],
      [() => kafka('kafka://h:9093?tlsKeyFile='), 'kafka:// query parameter tlsKeyFile'],
      [() => kafka('kafka://h:9093?tlsCa=/x'), 'kafka:// query parameter tlsCa'],
      [() => kafka('kafka://h:9093?ssl=yes'), 'kafka:// query parameter ssl'],
      [() => kafka('kafka://h:9093', { ssl: { cafile: 'x' } }), 'kafka.ssl.cafile'],
      [() => kafka('kafka://h:9093', { ssl: { host: 'elsewhere' } }), 'kafka.ssl.host'],
      [() => kafka('kafka://h:9093', { ssl: { ca: 42 } }), 'kafka.ssl.ca'],
      [() => kafka('kafka://h:9093', { ssl: { servername: '' } }), 'kafka.ssl.servername'],
      [() => kafka('kafka://h:9093', { ssl: 'yes' }), 'kafka.ssl'],
      [() => kafka('kafka://h:9093?saslMechanism=plain'), 'kafka:// query parameter saslMechanism'],
    ];
    for (const [call, field] of cases) expect(await configField(call)).toBe(field);
  });

  it('never shows a PEM given in the wrong place', async () => {
    const pem = '-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----';
    let message = '';
    try {
      kafka('kafka://h:9093', { ssl: pem });
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toContain('kafka.ssl');
    expect(message).not.toContain('secret');
  });
});

describe('rabbitmq TLS settings', () => {
  it('refuses TLS settings with an amqp:// URL, and an unreadable file, naming the field', async () => {
    expect(await configField(() => connect(`amqp://127.0.0.1:1?tlsCaFile=${caFile}`))).toBe(
      'amqp:// query parameter tlsCaFile',
    );
    expect(await configField(() => connect('amqp://127.0.0.1:1', { rabbitmq: { tls: { ca: 'x' } } }))).toBe(
      'rabbitmq.tls',
    );
    expect(await configField(() => connect('amqps://127.0.0.1:1?tlsCertFile=/no/such.pem'))).toBe(
      'amqps:// query parameter tlsCertFile',
    );
    expect(
      await configField(() =>
        connect('amqps://127.0.0.1:1', { rabbitmq: { tls: { cafile: 'x' } as never } }),
      ),
    ).toBe('rabbitmq.tls.cafile');
  });
});

describe('tlsFailure', () => {
  const failure = (code: string) =>
    tlsFailure(new Error('outer', { cause: Object.assign(new Error('x'), { code }) }));

  it('names the cause of a failed handshake, found in the cause chain', () => {
    expect(failure('ERR_TLS_CERT_ALTNAME_INVALID')?.reason).toMatch(/^hostname mismatch/);
    expect(failure('SELF_SIGNED_CERT_IN_CHAIN')?.reason).toMatch(/^certificate not trusted/);
    expect(failure('UNABLE_TO_VERIFY_LEAF_SIGNATURE')?.reason).toMatch(/^certificate not trusted/);
    expect(failure('CERT_HAS_EXPIRED')?.reason).toMatch(/^certificate expired/);
    expect(failure('ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE')?.reason).toMatch(/^client certificate refused/);
    expect(failure('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED')?.reason).toMatch(
      /^client certificate refused/,
    );
    expect(failure('ERR_SSL_TLSV1_ALERT_UNKNOWN_CA')?.reason).toMatch(/^client certificate refused/);
    expect(failure('ERR_SSL_WRONG_VERSION_NUMBER')?.reason).toMatch(/does not speak TLS/);
    expect(failure('ERR_OSSL_X509_KEY_VALUES_MISMATCH')?.reason).toMatch(/^TLS options refused/);
  });

  it('leaves network failures alone: those may pass', () => {
    for (const code of ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE'])
      expect(failure(code)).toBeUndefined();
    expect(tlsFailure(new Error('no code'))).toBeUndefined();
  });
});
