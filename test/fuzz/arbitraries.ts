import fc from 'fast-check';
import { SECRET_MARKER } from './harness.js';

/**
 * Generators of random and adversarial input for the public API. Values that would hurt the
 * shared test brokers (huge partition counts, the real delay tiers) are left to the memory
 * broker; see `names` and `partitionsArb`.
 */

/** An object that contains itself. */
function cyclic(): object {
  const a: Record<string, unknown> = { name: 'cyclic' };
  a.self = a;
  return a;
}

/** Values of the wrong type for almost any option. */
export const weird: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom<unknown>(
    null,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    Number.NEGATIVE_INFINITY,
    -1,
    0,
    -0,
    1.5,
    2 ** 31,
    2 ** 53,
    1e9,
    1e21,
    '0x10',
    '1e9',
    '10',
    '',
    ' ',
    'yes',
    true,
    false,
    [],
    [1, 2],
    {},
  ),
  fc.constant(null).map(() => Symbol('fuzz')),
  fc.constant(null).map(() => () => 'a function'),
  fc.constant(null).map(() => 10n),
  fc.constant(null).map(() => new Date(0)),
  fc.constant(null).map(() => new Map([['a', 1]])),
  fc.constant(null).map(() => Object.create(null) as object),
  fc.constant(null).map(cyclic),
  fc.anything({ maxDepth: 2, withBigInt: true, withDate: true, withMap: true, withNullPrototype: true }),
);

/** Numbers and number-like strings, valid and not. */
export const numberish: fc.Arbitrary<unknown> = fc.oneof(
  fc.integer({ min: -5, max: 100 }),
  fc.double(),
  fc.constantFrom<unknown>(
    Number.NaN,
    -1,
    0,
    0.5,
    2 ** 31,
    2 ** 32,
    2 ** 53,
    1e9,
    '0x10',
    '1e9',
    '5',
    '-1',
    '',
  ),
  weird,
);

/** An option set: random known keys (valid or weird values), sometimes an unknown key, sometimes not an object at all. */
export function optionsOf(
  fields: Record<string, fc.Arbitrary<unknown>>,
  unknownKeys: readonly string[],
): fc.Arbitrary<{ value: unknown; unknownKey: string | undefined }> {
  const known = fc.record(fields, { requiredKeys: [] });
  return fc.oneof(
    { weight: 6, arbitrary: known.map((value) => ({ value, unknownKey: undefined })) },
    {
      weight: 2,
      arbitrary: fc
        .tuple(known, fc.constantFrom(...unknownKeys), weird)
        .map(([value, key, extra]) => ({ value: { ...value, [key]: extra }, unknownKey: key })),
    },
    { weight: 1, arbitrary: weird.map((value) => ({ value, unknownKey: undefined })) },
  );
}

const controlChars = fc.string({
  unit: fc.integer({ min: 0, max: 31 }).map((c) => String.fromCharCode(c)),
  minLength: 1,
  maxLength: 5,
});

/**
 * Topic and group names. `pool` are valid names the test already made (cheap on real brokers);
 * `unique` makes fresh valid names; the rest are adversarial. `internal` are internal-looking names:
 * the real delay tiers on memory, a private namespace on shared brokers.
 */
export function names(options: { pool: readonly string[]; unique: string; internal: readonly string[] }) {
  return fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...options.pool) },
    {
      weight: 2,
      arbitrary: fc.stringMatching(/^[A-Za-z0-9_-]{0,12}$/).map((s) => `${options.unique}${s}`),
    },
    { weight: 2, arbitrary: fc.constantFrom('', '.', '..', '...', ' ', 'a b', 'a/b', 'a:b', 'a*', '#', 'é') },
    { weight: 1, arbitrary: fc.constantFrom(...options.internal) },
    { weight: 1, arbitrary: fc.constantFrom(199, 200, 201, 249, 250, 300).map((n) => 'n'.repeat(n)) },
    { weight: 1, arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }) },
    { weight: 1, arbitrary: controlChars },
    { weight: 1, arbitrary: weird },
  );
}

/** What the README and issue 9 say a topic or group name must be; anything else must be a `ConfigError`. */
export function invalidName(ref: unknown): string | undefined {
  // A topic may also be a TopicSpec (what defineTopic returns): its name counts.
  const name =
    typeof ref === 'object' && ref !== null && 'name' in ref ? (ref as { name: unknown }).name : ref;
  if (typeof name !== 'string') return 'not a string';
  if (!/^[A-Za-z0-9._-]{1,200}$/.test(name)) return 'outside 1-200 characters of A-Z a-z 0-9 . _ -';
  if (name === '.' || name === '..') return "'.' and '..' (refused by Kafka, so by every broker)";
  if (/^mq\./i.test(name)) return "the 'mq.' prefix is mqkit's (delay tiers, retry topics)";
  return undefined;
}

/** Partition counts a shared broker may safely be asked for (invalid ones, and 1-4). */
export const safePartitions: fc.Arbitrary<unknown> = fc.oneof(
  fc.integer({ min: 1, max: 4 }),
  fc.constantFrom<unknown>(0, -1, 1.5, Number.NaN, '2', '0x10', '1e9', null, [], {}),
  fc.double({ noInteger: true }),
);

/** Message keys. */
export const keys: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.constant(undefined) },
  { weight: 4, arbitrary: fc.string({ maxLength: 20 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 40 }) },
  { weight: 1, arbitrary: fc.constantFrom(300 * 1024, 70_000).map((n) => 'k'.repeat(n)) },
  { weight: 2, arbitrary: weird },
);

/** Message ids and tags. */
export const idsOrTags: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.constant(undefined) },
  { weight: 3, arbitrary: fc.stringMatching(/^[A-Za-z0-9_-]{1,20}$/) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 30 }) },
  { weight: 1, arbitrary: fc.constantFrom(255, 256, 300, 70_000).map((n) => 'i'.repeat(n)) },
  { weight: 1, arbitrary: fc.constantFrom('', 'a.b', 'a b', '#', '*') },
  { weight: 1, arbitrary: weird },
);

const headerName = fc.oneof(
  { weight: 4, arbitrary: fc.stringMatching(/^x-[a-z0-9-]{1,12}$/) },
  {
    weight: 3,
    arbitrary: fc.constantFrom('mq-id', 'MQ-ID', 'Mq-Tag', 'mq-', 'MQ-x', 'mQ-attempt', 'mq-error-code'),
  },
  { weight: 2, arbitrary: fc.constantFrom('content-type', 'Content-Type', 'content-encoding') },
  { weight: 1, arbitrary: fc.constantFrom('', ' ', 'a b', 'a:b', '__proto__', 'constructor', 'é') },
  { weight: 1, arbitrary: fc.constantFrom(255, 256, 300).map((n) => 'h'.repeat(n)) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 10 }) },
);

const headerValue = fc.oneof(
  { weight: 6, arbitrary: fc.string({ maxLength: 20 }) },
  { weight: 1, arbitrary: fc.constantFrom(1024 * 1024, 300 * 1024).map((n) => 'v'.repeat(n)) },
  { weight: 2, arbitrary: weird },
);

/** Headers: a dictionary of random names and values, or not a dictionary at all. */
export const headers: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: fc.constant(undefined) },
  {
    weight: 6,
    arbitrary: fc.array(fc.tuple(headerName, headerValue), { maxLength: 4 }).map((entries) => {
      const out: Record<string, unknown> = {};
      for (const [k, v] of entries)
        Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
      return out;
    }),
  },
  { weight: 2, arbitrary: fc.constantFrom<unknown>('a=b', ['a', 'b'], 5, true, null) },
  { weight: 1, arbitrary: weird },
);

/** True when mqkit must refuse `value` as headers (README: strings only, `mq-` names reserved, any case). */
export function invalidHeaders(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'headers not an object';
  if (value instanceof Map || value instanceof Date) return undefined; // no own enumerable entries: harmless
  for (const [name, v] of Object.entries(value)) {
    if (name.toLowerCase().startsWith('mq-')) return `reserved header name ${JSON.stringify(name)}`;
    if (typeof v !== 'string') return `header ${JSON.stringify(name)} is not a string`;
  }
  return undefined;
}

/** Bodies: JSON, bytes, and what JSON cannot hold. */
export function bodies(hugeBytes: readonly number[]): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: 5, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
    { weight: 2, arbitrary: fc.uint8Array({ maxLength: 64 }) },
    { weight: 1, arbitrary: fc.constantFrom(...hugeBytes).map((n) => Buffer.alloc(n, 7)) },
    { weight: 1, arbitrary: fc.constantFrom(undefined) },
    { weight: 2, arbitrary: weird },
    {
      weight: 1,
      arbitrary: fc.anything({
        maxDepth: 3,
        withBigInt: true,
        withMap: true,
        withSet: true,
        withTypedArray: true,
      }),
    },
  );
}

/** Characters that need care in a URL's user info. */
const specials = [
  '/',
  '@',
  ':',
  '%',
  ' ',
  '#',
  '?',
  '&',
  '=',
  '+',
  '\\',
  '"',
  "'",
  '~',
  '[',
  ']',
  'é',
  '\u0000',
];

/** A password that starts with the secret marker, with random special characters. */
export const passwords: fc.Arbitrary<string> = fc
  .array(fc.oneof(fc.constantFrom(...specials), fc.stringMatching(/^[a-z0-9]{1,4}$/)), { maxLength: 6 })
  .map((parts) => `${SECRET_MARKER}${parts.join('')}`);

/** How a password is written into a URL: percent-encoded, raw, or with a broken escape. */
export const passwordEncodings = fc.constantFrom('encoded', 'raw', 'bad-escape', 'encoded-marker');

export function writePassword(password: string, how: string): string {
  switch (how) {
    case 'raw':
      return password;
    case 'bad-escape':
      return `${encodeURIComponent(password)}%zz`;
    case 'encoded-marker':
      // Every character percent-encoded, the marker too: only the decoded form shows it.
      return [...Buffer.from(password)]
        .map((b) => `%${b.toString(16).padStart(2, '0').toUpperCase()}`)
        .join('');
    default:
      return encodeURIComponent(password);
  }
}

/** A URL as the user wrote it, the password in it, and the password as written. */
export interface FuzzUrl {
  url: string;
  password: string | undefined;
  written: string | undefined;
}

/** Random URLs: `scheme://[user[:password]@]host[:port][/path][?query]`, each part random or hostile. */
export function urls(parts: {
  schemes: readonly string[];
  hosts: readonly string[];
  ports: readonly string[];
  paths: readonly string[];
  queries: readonly string[];
}): fc.Arbitrary<FuzzUrl> {
  return fc
    .record({
      scheme: fc.oneof(
        { weight: 8, arbitrary: fc.constantFrom(...parts.schemes) },
        { weight: 1, arbitrary: fc.string({ maxLength: 8 }) },
      ),
      slashes: fc.constantFrom('://', '://', '://', ':/', ':', '///'),
      user: fc.option(
        fc.oneof(fc.stringMatching(/^[a-z]{1,8}$/), fc.constantFrom('guest', '', 'u%20x', 'a@b')),
        { nil: undefined },
      ),
      password: fc.option(passwords, { nil: undefined }),
      encoding: passwordEncodings,
      host: fc.oneof(
        { weight: 8, arbitrary: fc.constantFrom(...parts.hosts) },
        { weight: 1, arbitrary: fc.string({ maxLength: 10 }) },
      ),
      port: fc.constantFrom(...parts.ports),
      path: fc.constantFrom(...parts.paths),
      query: fc.constantFrom(...parts.queries),
      long: fc.constantFrom(0, 0, 0, 0, 5000, 100_000),
    })
    .map((p) => {
      const written = p.password === undefined ? undefined : writePassword(p.password, p.encoding);
      const userinfo =
        p.user === undefined && written === undefined
          ? ''
          : `${p.user ?? ''}${written === undefined ? '' : `:${written}`}@`;
      const path = p.long > 0 ? `/${'p'.repeat(p.long)}` : p.path;
      return {
        url: `${p.scheme}${p.slashes}${userinfo}${p.host}${p.port}${path}${p.query}`,
        password: p.password,
        written,
      };
    });
}

/** A spy-or-broken logger slot for `ConnectOptions.logger`. */
export const loggerSlot = fc.oneof(
  { weight: 8, arbitrary: fc.constant('spy' as const) },
  { weight: 1, arbitrary: fc.constant(undefined) },
  { weight: 1, arbitrary: weird },
  { weight: 1, arbitrary: fc.constant({ debug() {}, info() {} }) },
);
