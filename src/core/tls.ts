/**
 * TLS settings shared by the adapters: the options object (Node's `tls.connect` options), the
 * URL query parameters that fill it from files, and what a failed handshake means.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { type ConnectionOptions, createSecureContext } from 'node:tls';
import { ConfigError } from './errors.js';
import { isPlainObject, refuseUnknownKeys } from './options.js';

/**
 * Node's `tls.connect` options (ca, cert, key, pfx, passphrase, servername, rejectUnauthorized,
 * minVersion, ...), except host, port, path, socket and timeout, which the adapter sets.
 */
export type TlsOptions = Omit<ConnectionOptions, 'host' | 'port' | 'path' | 'socket' | 'timeout'>;

/** `tls.connect` options accepted in a TLS options object (host, port, socket and timeout are mqkit's). */
export const TLS_KEYS = [
  'ALPNProtocols',
  'allowPartialTrustChain',
  'ca',
  'cert',
  'checkServerIdentity',
  'ciphers',
  'clientCertEngine',
  'crl',
  'dhparam',
  'ecdhCurve',
  'enableTrace',
  'honorCipherOrder',
  'key',
  'maxVersion',
  'minDHSize',
  'minVersion',
  'passphrase',
  'pfx',
  'privateKeyEngine',
  'privateKeyIdentifier',
  'pskCallback',
  'rejectUnauthorized',
  'secureContext',
  'secureOptions',
  'secureProtocol',
  'servername',
  'session',
  'sigalgs',
];

/**
 * Checks a TLS options object given at `field` (e.g. `rabbitmq.tls`): an object literal of
 * known keys, `ca`/`cert`/`key`/`pfx`/`crl` PEM strings or Buffers (or arrays of them).
 * Messages never show a value: a string here may be a private key.
 */
export function resolveTlsOptions(tls: unknown, field: string): TlsOptions {
  if (!isPlainObject(tls)) {
    throw new ConfigError(
      field,
      // Only the type: a string here may well be a PEM key passed in the wrong place.
      `must be an object of tls.connect options such as { ca } (got ${describeType(tls)})`,
    );
  }
  refuseUnknownKeys(tls, TLS_KEYS, `${field}.`);
  if (tls.rejectUnauthorized !== undefined && typeof tls.rejectUnauthorized !== 'boolean') {
    throw new ConfigError(`${field}.rejectUnauthorized`, 'must be true or false');
  }
  if (tls.servername !== undefined && (typeof tls.servername !== 'string' || tls.servername === '')) {
    throw new ConfigError(`${field}.servername`, 'must be a non-empty string');
  }
  if (typeof tls.servername === 'string') refuseIpServername(tls.servername, `${field}.servername`);
  if (tls.passphrase !== undefined && typeof tls.passphrase !== 'string') {
    throw new ConfigError(`${field}.passphrase`, 'must be a string');
  }
  for (const name of ['ca', 'cert', 'key', 'pfx', 'crl']) {
    const value = tls[name];
    const ok = (v: unknown) => typeof v === 'string' || v instanceof Uint8Array || isPlainObject(v);
    if (value !== undefined && !(Array.isArray(value) ? value.every(ok) : ok(value))) {
      throw new ConfigError(`${field}.${name}`, 'must be a PEM string, a Buffer, or an array of them');
    }
  }
  for (const name of ['ca', 'cert', 'key']) {
    const value = tls[name];
    for (const v of Array.isArray(value) ? value : [value]) {
      if (typeof v === 'string' && !v.includes(PEM_BEGIN)) {
        // Never the value: a mangled key is still key material.
        throw new ConfigError(
          `${field}.${name}`,
          `is a string without a "${PEM_BEGIN}" line, so not PEM text; it looks like a path: use tlsCaFile (tlsCertFile, tlsKeyFile) in the URL or readFileSync`,
        );
      }
    }
  }
  return tls as TlsOptions;
}

const PEM_BEGIN = '-----BEGIN';

/** SNI carries host names only: Node warns (DEP0123) and sends nothing for an IP address. */
function refuseIpServername(servername: string, field: string): void {
  if (isIP(servername) !== 0) {
    throw new ConfigError(
      field,
      `must be a host name, not an IP address (${servername}): SNI carries host names only; leave it unset to verify the certificate against the IP connected to`,
    );
  }
}

/**
 * Makes the secure context `tls` stands for once, so that a key, certificate or passphrase
 * OpenSSL cannot use is a `ConfigError` before connecting, not a retriable connection error
 * on every attempt. `fieldOf` names where an option came from (`kafka.ssl.key`, a URL
 * parameter). The message names the field and OpenSSL's reason, never a value.
 */
export function checkSecureContext(tls: TlsOptions, fieldOf: (option: string) => string): void {
  const make = (options: TlsOptions): unknown => {
    try {
      createSecureContext(options);
      return undefined;
    } catch (error) {
      return error;
    }
  };
  const whole = make(tls);
  if (whole === undefined) return;
  const { key, cert, ca, crl, pfx, passphrase } = tls;
  // One option (or pair) at a time, to name the one OpenSSL refuses.
  const parts: [string, TlsOptions][] = [
    ['ca', { ca }],
    ['crl', { crl }],
    ['pfx', { pfx, passphrase }],
    ['key', { key, passphrase }],
    ['cert', { cert }],
    ['key', { key, cert, passphrase }],
  ];
  let option = 'key';
  let error = whole;
  for (const [name, options] of parts) {
    if (tls[name as keyof TlsOptions] === undefined) continue;
    const failed = make(options);
    if (failed !== undefined) {
      option = name;
      error = failed;
      break;
    }
  }
  const code = String((error as { code?: unknown }).code ?? 'unknown');
  let why = `OpenSSL cannot use it (${code}: ${oneLine((error as Error).message ?? '')})`;
  if (code === 'ERR_OSSL_BAD_DECRYPT' && (option === 'key' || option === 'pfx')) {
    why =
      passphrase === undefined
        ? `is encrypted, or damaged: give its passphrase (${code})`
        : `does not decrypt ${option}: wrong passphrase, or a damaged ${option} (${code})`;
    if (passphrase !== undefined) option = 'passphrase';
  } else if (code === 'ERR_OSSL_X509_KEY_VALUES_MISMATCH') {
    why = `does not belong to the certificate given as cert (${code})`;
  }
  throw new ConfigError(fieldOf(option), why);
}

function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object other than an object literal';
  return `a ${typeof value}`;
}

/**
 * URL query parameters that set TLS options, the same on every adapter: the files are read
 * once, when connecting.
 */
export const TLS_QUERY_PARAMS = {
  /** PEM file of the CA certificate(s) to trust instead of Node's built-in list: `ca`. */
  tlsCaFile: 'ca',
  /** PEM file of the client certificate (chain), for mutual TLS: `cert`. */
  tlsCertFile: 'cert',
  /** PEM file of the client certificate's private key (unencrypted, or with `passphrase` in options): `key`. */
  tlsKeyFile: 'key',
  /** Name the server's certificate must carry, and sent as SNI: `servername`. */
  tlsServername: 'servername',
} as const;

export type TlsQueryParam = keyof typeof TLS_QUERY_PARAMS;

/**
 * The TLS options a URL's query sets (see {@link TLS_QUERY_PARAMS}), or undefined when it sets
 * none. `where` names the parameters in errors, e.g. `kafka:// query parameter `. A file that
 * cannot be read is a `ConfigError` naming the parameter and the path (never its content).
 */
export function tlsFromQuery(query: Readonly<Record<string, string>>, where: string): TlsOptions | undefined {
  const tls: Record<string, string | Buffer> = {};
  for (const [param, option] of Object.entries(TLS_QUERY_PARAMS)) {
    const value = query[param];
    if (value === undefined) continue;
    if (value === '') throw new ConfigError(`${where}${param}`, 'must not be empty');
    if (option === 'servername') {
      refuseIpServername(value, `${where}${param}`);
      tls.servername = value;
      continue;
    }
    try {
      tls[option] = readFileSync(value);
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      throw new ConfigError(
        `${where}${param}`,
        `cannot read the file ${JSON.stringify(value)} (${typeof code === 'string' ? code : 'unreadable'}); give the path of a PEM file`,
      );
    }
    if (!tls[option].includes(PEM_BEGIN)) {
      throw new ConfigError(
        `${where}${param}`,
        `the file ${JSON.stringify(value)} is not PEM (no "${PEM_BEGIN}" line)`,
      );
    }
  }
  return Object.keys(tls).length === 0 ? undefined : (tls as TlsOptions);
}

/**
 * The URL's TLS options (`fromUrl`, from {@link tlsFromQuery}) with each key of the options
 * object given at `optionField` (e.g. `kafka.ssl`) over them, checked by
 * {@link checkSecureContext}; errors name the parameter or option each value came from.
 */
export function mergeTls(
  fromUrl: TlsOptions | undefined,
  fromOption: TlsOptions | undefined,
  optionField: string,
  where: string,
): TlsOptions {
  const merged: TlsOptions = { ...fromUrl, ...fromOption };
  checkSecureContext(merged, (option) => {
    const param = Object.entries(TLS_QUERY_PARAMS).find(([, o]) => o === option)?.[0];
    const fromQuery = fromOption?.[option as keyof TlsOptions] === undefined && param !== undefined;
    return fromQuery && fromUrl?.[option as keyof TlsOptions] !== undefined
      ? `${where}${param}`
      : `${optionField}.${option}`;
  });
  return merged;
}

/** Why a TLS handshake failed, when an error (or one of its causes) says; see {@link tlsFailure}. */
export interface TlsFailure {
  /** Node's or OpenSSL's code, e.g. `ERR_TLS_CERT_ALTNAME_INVALID`. */
  code: string;
  /** What went wrong, starting with a short cause: 'certificate not trusted', 'hostname mismatch', ... */
  reason: string;
}

/**
 * The TLS verification or handshake failure an error stands for, found by the `code` of the
 * error or of one of its `cause`s (client libraries wrap socket errors), or undefined for any
 * other error. Every such failure repeats on each attempt until the configuration changes:
 * callers report it as not retriable.
 */
export function tlsFailure(error: unknown): TlsFailure | undefined {
  let e: unknown = error;
  for (let depth = 0; depth < 6 && typeof e === 'object' && e !== null; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') {
      const reason = tlsReason(code);
      if (reason !== undefined) return { code, reason };
    }
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

function tlsReason(code: string): string | undefined {
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID' || code === 'HOSTNAME_MISMATCH') {
    return "hostname mismatch: the server's certificate does not name the host connected to; connect by a name it lists, or set servername";
  }
  if (code === 'CERT_HAS_EXPIRED') return "certificate expired: the server's certificate is no longer valid";
  if (code === 'CERT_NOT_YET_VALID')
    return "certificate not yet valid: check the server's certificate and the clocks";
  if (
    /^(CERT_|SELF_SIGNED|DEPTH_ZERO_SELF_SIGNED|UNABLE_TO_(GET|VERIFY|DECRYPT)|INVALID_CA|PATH_LENGTH|ERR_TLS_CERT)/.test(
      code,
    )
  ) {
    return "certificate not trusted: the server's certificate is not signed by a CA the client trusts; give that CA as ca (tlsCaFile)";
  }
  if (
    /ALERT_(BAD_CERTIFICATE|CERTIFICATE_REQUIRED|UNKNOWN_CA|CERTIFICATE_UNKNOWN|UNSUPPORTED_CERTIFICATE|CERTIFICATE_REVOKED|CERTIFICATE_EXPIRED|ACCESS_DENIED)$/.test(
      code,
    )
  ) {
    return 'client certificate refused: the server requires a client certificate signed by a CA it trusts; give cert and key (tlsCertFile, tlsKeyFile)';
  }
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG') {
    return 'TLS handshake failed: the port does not speak TLS (a plaintext listener?)';
  }
  if (code.endsWith('ALERT_HANDSHAKE_FAILURE')) {
    return 'TLS handshake failed: no TLS version or cipher in common, or the server requires a client certificate (cert, key)';
  }
  if (code.startsWith('ERR_SSL_')) return 'TLS handshake failed';
  // OpenSSL refused the options themselves: a PEM that does not parse, a key not matching its certificate.
  if (code.startsWith('ERR_OSSL_')) return 'TLS options refused: check ca, cert, key and passphrase';
  return undefined;
}

/** An error text on one line (OpenSSL's end with a newline and may span several). */
export const oneLine = (text: string): string => text.replace(/\s+/g, ' ').trim();
