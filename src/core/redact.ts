/**
 * Query parameters whose values are masked: anything naming a password, secret, token, key,
 * credential, signature or SASL / auth setting.
 */
const SECRET_PARAM = /pass|pwd|secret|token|key|credential|sig|sasl|auth/i;

/**
 * The URL with its secrets replaced by `***`, for error messages and logs: the password of the
 * user info (all of the user info when it has no `:`, as a lone token is a secret too) and the
 * values of query parameters such as `password=`, `token=` or `sasl...=`.
 *
 * Works on any text, parsable or not, and errs on the side of hiding: the user info runs from
 * `//` to the last `@`, so a password holding `/`, `@`, `:`, `?`, `#` or `%` is hidden whole
 * (an `@` later in the path or query hides the host too; nothing secret is shown either way).
 * Without `scheme://` at the start, everything between the scheme and the last `@` is hidden.
 */
export function redact(url: string): string {
  if (typeof url !== 'string') return '***';
  let text = url;
  const at = text.lastIndexOf('@');
  const authority = /^[a-z][a-z0-9+.-]*:\/\//i.exec(text)?.[0];
  if (at >= 0 && (authority === undefined || at < authority.length)) {
    // No `scheme://` before the '@' (`scheme:user:pass@host`, `:/:pass//@host`): hide all up to it.
    const scheme = /^[a-z][a-z0-9+.-]*:/i.exec(text)?.[0] ?? '';
    text = `${scheme}***${text.slice(at)}`;
  } else if (authority !== undefined && at >= authority.length) {
    const userInfo = text.slice(authority.length, at);
    const colon = userInfo.indexOf(':');
    // The user name is kept for diagnosis, unless what precedes the ':' is not a plain name.
    const user = colon >= 0 && !/[/?#@]/.test(userInfo.slice(0, colon)) ? userInfo.slice(0, colon) : '';
    text = `${authority}${user === '' ? '' : `${user}:`}***${text.slice(at)}`;
  }
  return text.replace(/([?&;]([^=&;#]*)=)([^&;#]*)/g, (whole, prefix: string, name: string) =>
    SECRET_PARAM.test(safeDecode(name)) ? `${prefix}***` : whole,
  );
}

/** `decodeURIComponent` that keeps a malformed escape as written instead of throwing `URIError`. */
export function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** {@link redact} of a parsed URL. */
export function redactUrl(url: URL): string {
  return redact(url.href);
}

/** The secrets a URL carries, as they may appear in text: its password raw and decoded. */
export function urlSecrets(url: URL): string[] {
  if (url.password === '') return url.username === '' || url.href.includes(':@') ? [] : [url.username];
  return [url.password, safeDecode(url.password)];
}

/** `text` with every occurrence of each secret replaced by `***`. */
export function scrubText(text: string, secrets: readonly string[]): string {
  return secrets.filter((s) => s.length > 0).reduce((acc, s) => acc.split(s).join('***'), text);
}

/**
 * An error (from a client library or the socket) fit to become a `cause` or a log field: when
 * its message, stack or own string properties hold one of `secrets`, a plain `Error` copy with
 * them replaced by `***` (its `code` kept); otherwise the error itself. Never throws.
 */
export function scrubError(error: unknown, secrets: readonly string[]): unknown {
  const found = secrets.filter((s) => s.length > 0);
  if (found.length === 0) return error;
  if (!(error instanceof Error)) {
    return typeof error === 'string' ? scrubText(error, found) : error;
  }
  let text: string;
  try {
    const own = Object.values(error).filter((v): v is string => typeof v === 'string');
    text = [error.message, error.stack ?? '', ...own].join('\n');
  } catch {
    text = '';
  }
  if (text !== '' && !found.some((s) => text.includes(s))) return error;
  const copy = new Error(scrubText(String(error.message), found));
  copy.name = error.name;
  copy.stack = scrubText(error.stack ?? copy.message, found);
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' || typeof code === 'number') Object.assign(copy, { code });
  return copy;
}
