import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveKafkaOptions } from '../../src/adapters/kafka/options.js';
import { tlsFailure } from '../../src/core/tls.js';
import { type ConnectOptions, connect, isMqError } from '../../src/index.js';
import { makeTestCerts, type TestCerts } from '../infra/tls-certs.js';
import { textLogger } from '../integration/tls-helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'mqkit-tls-unit-'));
let certs: TestCerts;
let caFile: string;
let certFile: string;
let keyFile: string;
const notPemFile = join(dir, 'not-pem.txt');
writeFileSync(notPemFile, 'not a certificate');
beforeAll(async () => {
  certs = await makeTestCerts();
  caFile = certs.ca.certFile;
  certFile = certs.client.certFile;
  keyFile = certs.client.keyFile;
});
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await certs?.remove();
});

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
    expect(String(ssl.ca)).toBe(certs.ca.cert);
    expect(String(ssl.cert)).toBe(certs.client.cert);
    expect(String(ssl.key)).toBe(certs.client.key);
    expect(ssl.servername).toBe('kafka.internal');
  });

  it("takes tls.connect options as kafka.ssl, each key over the URL's", () => {
    const { cert, key } = certs.client;
    const ssl = kafka(
      `kafka://h:9093?tlsCaFile=${caFile}&tlsServername=a&tlsKeyFile=${certs.server.keyFile}`,
      {
        ssl: { servername: 'b', cert, key },
      },
    ) as { ssl: Record<string, unknown> };
    expect(String(ssl.ssl.ca)).toBe(certs.ca.cert);
    expect(ssl.ssl).toMatchObject({ servername: 'b', cert, key });
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
    expect(
      await configField(() => connect('amqp://127.0.0.1:1', { rabbitmq: { tls: { ca: certs.ca.cert } } })),
    ).toBe('rabbitmq.tls');
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

describe('TLS options OpenSSL cannot use are a ConfigError before connecting, naming the field, never the value', () => {
  const passphrase = `pass-${randomUUID()}`;
  const encryptedKey = generateKeyPairSync('rsa', {
    modulusLength: 1024,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase },
  }).privateKey;
  const body = (pem: string): string => pem.split('\n')[1] ?? '';
  // A PEM frame around a body OpenSSL cannot decode.
  const secretBody = `c2VjcmV0${randomUUID().replaceAll('-', '')}`;
  const badKey = `-----BEGIN PRIVATE KEY-----\n${secretBody}\n-----END PRIVATE KEY-----\n`;

  /** Connects to a port nobody listens on: a ConfigError must come first. Checks message, cause chain and logs. */
  async function refused(url: string, options: ConnectOptions, secrets: string[]) {
    const { logger, lines } = textLogger();
    let error: unknown;
    try {
      await (await connect(url, { ...options, logger })).close();
    } catch (e) {
      error = e;
    }
    expect(isMqError(error, 'CONFIG'), inspect(error)).toBe(true);
    const e = error as { field: string; message: string; retriable: boolean };
    expect(e.retriable).toBe(false);
    for (const secret of secrets) {
      expect(secret.length).toBeGreaterThan(8);
      expect(inspect(error, { depth: 20 })).not.toContain(secret);
      expect(lines.join('\n')).not.toContain(secret);
    }
    return e;
  }

  it('a key whose PEM body does not decode (kafka.ssl.key, rabbitmq.tls.key)', async () => {
    const k = await refused('kafka://127.0.0.1:1', { kafka: { ssl: { key: badKey } } }, [secretBody]);
    expect(k.field).toBe('kafka.ssl.key');
    expect(k.message).toMatch(/OpenSSL cannot use it/);
    const r = await refused('amqps://127.0.0.1:1', { rabbitmq: { tls: { key: badKey } } }, [secretBody]);
    expect(r.field).toBe('rabbitmq.tls.key');
  });

  it('a key file that does not decode, named by its URL parameter', async () => {
    const file = join(dir, 'bad.key');
    writeFileSync(file, badKey);
    const k = await refused(`kafka://127.0.0.1:1?tlsKeyFile=${file}`, {}, [secretBody]);
    expect(k.field).toBe('kafka:// query parameter tlsKeyFile');
    const r = await refused(`amqps://127.0.0.1:1?tlsKeyFile=${file}`, {}, [secretBody]);
    expect(r.field).toBe('amqps:// query parameter tlsKeyFile');
  });

  it('a wrong passphrase, or none, for an encrypted key', async () => {
    const wrong = `wrong-${randomUUID()}`;
    const secrets = [wrong, passphrase, body(encryptedKey)];
    const k = await refused(
      'kafka://127.0.0.1:1',
      { kafka: { ssl: { key: encryptedKey, passphrase: wrong } } },
      secrets,
    );
    expect(k.field).toBe('kafka.ssl.passphrase');
    expect(k.message).toMatch(/wrong passphrase/);
    const r = await refused(
      'amqps://127.0.0.1:1',
      { rabbitmq: { tls: { key: encryptedKey, passphrase: wrong } } },
      secrets,
    );
    expect(r.field).toBe('rabbitmq.tls.passphrase');
    const none = await refused('kafka://127.0.0.1:1', { kafka: { ssl: { key: encryptedKey } } }, secrets);
    expect(none.field).toBe('kafka.ssl.key');
    expect(none.message).toMatch(/give its passphrase/);
    // The right passphrase passes the check.
    expect(kafka('kafka://h:9093', { ssl: { key: encryptedKey, passphrase } }).ssl).toMatchObject({
      passphrase,
    });
  });

  it('a key that does not belong to the certificate', async () => {
    const k = await refused(
      'kafka://127.0.0.1:1',
      { kafka: { ssl: { cert: certs.client.cert, key: certs.server.key } } },
      [body(certs.server.key)],
    );
    expect(k.field).toBe('kafka.ssl.key');
    expect(k.message).toMatch(/does not belong to the certificate/);
  });

  it('a file path given as ca, cert or key: looks like a path, the value not shown', async () => {
    const path = `/etc/secret-${randomUUID()}/ca.pem`;
    for (const name of ['ca', 'cert', 'key']) {
      const k = await refused('kafka://127.0.0.1:1', { kafka: { ssl: { [name]: path } } }, [path]);
      expect(k.field).toBe(`kafka.ssl.${name}`);
      expect(k.message).toMatch(/looks like a path: use tlsCaFile .* or readFileSync/);
      const r = await refused('amqps://127.0.0.1:1', { rabbitmq: { tls: { [name]: [path] } } }, [path]);
      expect(r.field).toBe(`rabbitmq.tls.${name}`);
    }
  });

  it('a URL file that is not PEM', async () => {
    expect(await configField(() => kafka(`kafka://h:9093?tlsCaFile=${notPemFile}`))).toBe(
      'kafka:// query parameter tlsCaFile',
    );
  });
});

describe('SNI takes host names only: an IP address as server name is refused', () => {
  it('in the URL and in the options, on both adapters', async () => {
    expect(await configField(() => kafka('kafka://h:9093?tlsServername=127.0.0.1'))).toBe(
      'kafka:// query parameter tlsServername',
    );
    expect(await configField(() => kafka('kafka://h:9093', { ssl: { servername: '::1' } }))).toBe(
      'kafka.ssl.servername',
    );
    expect(await configField(() => connect('amqps://127.0.0.1:1?tlsServername=10.0.0.1'))).toBe(
      'amqps:// query parameter tlsServername',
    );
    expect(
      await configField(() =>
        connect('amqps://127.0.0.1:1', { rabbitmq: { tls: { servername: '127.0.0.1' } } }),
      ),
    ).toBe('rabbitmq.tls.servername');
  });
});

describe('amqp URLs: an unknown tls* query parameter is refused, naming it', () => {
  it('a misspelt tlsCaFile', async () => {
    expect(await configField(() => connect(`amqps://127.0.0.1:1?tlsCAFile=${caFile}`))).toBe(
      'amqps:// query parameter tlsCAFile',
    );
    expect(await configField(() => connect('amqp://127.0.0.1:1?tlsCertfile=/x'))).toBe(
      'amqp:// query parameter tlsCertfile',
    );
  });
});
