import fc from 'fast-check';

/** Bodies another client may publish: random bytes, JSON, JSON cut short, text, nothing. */
export const foreignBodies: fc.Arbitrary<Buffer> = fc.oneof(
  fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
  fc.jsonValue({ maxDepth: 2 }).map((v) => Buffer.from(JSON.stringify(v) ?? 'null')),
  fc.tuple(fc.jsonValue({ maxDepth: 2 }), fc.nat()).map(([v, n]) => {
    const text = JSON.stringify(v) ?? 'null';
    return Buffer.from(text.slice(0, n % Math.max(1, text.length)));
  }),
  fc.string({ unit: 'grapheme', maxLength: 40 }).map((s) => Buffer.from(s)),
  fc.constantFrom(
    Buffer.alloc(0),
    Buffer.from([0xff, 0xfe, 0x00]),
    Buffer.from('{"a":'),
    Buffer.alloc(200 * 1024, 0x41),
  ),
);

/** Content types, real and not. */
export const contentTypes = fc.oneof(
  fc.constantFrom(
    'application/json',
    'application/json; charset=utf-8',
    'text/plain',
    'text/',
    'application/octet-stream',
    'application/x-protobuf',
    '',
    'APPLICATION/JSON',
  ),
  fc.string({ maxLength: 30 }),
);

/** mqkit's own header names, set by a foreign client to anything. */
export const mqHeaderNames = fc.constantFrom(
  'mq-id',
  'mq-attempt',
  'mq-tag',
  'mq-key',
  'mq-id-origin',
  'mq-timestamp',
  'mq-target-topic',
  'mq-target-group',
  'mq-deliver-at',
  'mq-error-code',
  'mq-original-topic',
  'mq-hash',
  'content-type',
);

/** Values a foreign client may put in mqkit's headers. */
export const mqHeaderValues = fc.oneof(
  fc.constantFrom(
    '',
    '0',
    '-1',
    '1e9',
    'NaN',
    '999999999999999999999',
    'abc',
    'position',
    'delivery',
    'g',
    '.',
  ),
  fc.string({ maxLength: 20 }),
);
