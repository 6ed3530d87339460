import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { oneLine, run } from './exec-utils.js';

/** A certificate and its private key (unencrypted PKCS#8), as PEM text and as files. */
export interface CertAndKey {
  cert: string;
  key: string;
  certFile: string;
  keyFile: string;
}

/**
 * Certificates for TLS tests, made by {@link makeTestCerts} with a private CA of their own.
 * Every certificate is RSA 2048, valid for 1 day.
 */
export interface TestCerts {
  /** Temporary directory holding every file below; removed by `remove()`. */
  dir: string;
  /** The private CA that signed `server`, `client` and `wrongName`. */
  ca: CertAndKey;
  /** Server certificate for IP 127.0.0.1 and DNS localhost (serverAuth). */
  server: CertAndKey;
  /** Server certificate whose only name is DNS `wrong.example` (no IP): a host name mismatch on 127.0.0.1. */
  wrongName: CertAndKey;
  /** Client certificate, CN `mqkit-client` (clientAuth), for mutual TLS. */
  client: CertAndKey;
  /** Another CA, trusted by nobody: given as `ca`, the servers' certificates do not verify. */
  rogueCa: CertAndKey;
  /** Client certificate signed by `rogueCa`: a server trusting `ca` refuses it. */
  rogueClient: CertAndKey;
  /** Writes `key` then `cert` into one file, for servers that read both from one PEM file; returns its path. */
  bundle(pair: CertAndKey): Promise<string>;
  remove(): Promise<void>;
}

const HINT = 'the TLS tests make certificates with the openssl command: apt-get install openssl';

/**
 * Makes a private CA and certificates signed by it (see {@link TestCerts}) with the `openssl`
 * command, in a new temporary directory. Takes well under a second.
 * @throws Error with one line when openssl is missing or fails
 */
export async function makeTestCerts(): Promise<TestCerts> {
  const dir = await mkdtemp(join(tmpdir(), 'mqkit-certs-'));
  try {
    const openssl = async (args: string[]): Promise<void> => {
      const result = await run('openssl', args, { cwd: dir, timeoutMs: 30_000 });
      if (result.notFound) throw new Error(`openssl not found; ${HINT}`);
      if (result.code !== 0)
        throw new Error(
          `openssl ${args[0]} failed: ${oneLine(result.stderr || result.stdout, 300)}; ${HINT}`,
        );
    };
    const read = async (name: string): Promise<CertAndKey> => {
      const certFile = join(dir, `${name}.pem`);
      const keyFile = join(dir, `${name}.key`);
      return {
        cert: await readFile(certFile, 'utf8'),
        key: await readFile(keyFile, 'utf8'),
        certFile,
        keyFile,
      };
    };
    const makeCa = async (name: string, cn: string): Promise<CertAndKey> => {
      await openssl(
        ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', `/CN=${cn}`].concat([
          '-keyout',
          `${name}.key`,
          '-out',
          `${name}.pem`,
          '-addext',
          'basicConstraints=critical,CA:TRUE',
          '-addext',
          'keyUsage=critical,keyCertSign,cRLSign',
        ]),
      );
      return read(name);
    };
    const makeLeaf = async (
      name: string,
      cn: string,
      ca: string,
      extensions: string,
    ): Promise<CertAndKey> => {
      await writeFile(join(dir, `${name}.ext`), extensions);
      await openssl([
        'req',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-subj',
        `/CN=${cn}`,
        '-keyout',
        `${name}.key`,
        '-out',
        `${name}.csr`,
      ]);
      await openssl(
        [
          'x509',
          '-req',
          '-in',
          `${name}.csr`,
          '-CA',
          `${ca}.pem`,
          '-CAkey',
          `${ca}.key`,
          '-CAcreateserial',
        ].concat(['-days', '1', '-out', `${name}.pem`, '-extfile', `${name}.ext`]),
      );
      return read(name);
    };
    const serverExt = (names: string) =>
      `basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=${names}\n`;
    const clientExt =
      'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n';

    const [ca, rogueCa] = await Promise.all([
      makeCa('ca', 'mqkit test CA'),
      makeCa('rogue-ca', 'mqkit rogue CA'),
    ]);
    // One at a time per CA: -CAcreateserial writes the CA's serial file.
    const server = await makeLeaf('server', '127.0.0.1', 'ca', serverExt('IP:127.0.0.1,DNS:localhost'));
    const wrongName = await makeLeaf('wrong-name', 'wrong.example', 'ca', serverExt('DNS:wrong.example'));
    const client = await makeLeaf('client', 'mqkit-client', 'ca', clientExt);
    const rogueClient = await makeLeaf('rogue-client', 'mqkit-rogue-client', 'rogue-ca', clientExt);
    return {
      dir,
      ca,
      server,
      wrongName,
      client,
      rogueCa,
      rogueClient,
      bundle: async (pair) => {
        const file = join(dir, `${pair.certFile.slice(dir.length + 1, -'.pem'.length)}-bundle.pem`);
        await writeFile(file, `${pair.key.trim()}\n${pair.cert.trim()}\n`);
        return file;
      },
      remove: () => rm(dir, { recursive: true, force: true }),
    };
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}
