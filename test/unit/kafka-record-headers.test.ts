import { createRequire } from 'node:module';
import { describe, expect, it, vi } from 'vitest';
import {
  encodeHeader,
  installRecordHeaders,
  type RecordArg,
} from '../../src/adapters/kafka/kafkajs/record-headers.js';

const require = createRequire(import.meta.url);
const kafkajs = require('kafkajs') as unknown;
type EncoderLike = { buffer: Buffer };
const Encoder = require('kafkajs/src/protocol/encoder') as new () => {
  writeVarIntString(v: string): { writeVarIntBytes(v: unknown): EncoderLike };
};
const Decoder = require('kafkajs/src/protocol/decoder') as new (
  buffer: Buffer,
) => {
  readVarIntBytes(): Buffer;
};
/** What kafkajs's own header/v0 encoder writes. */
const kafkajsHeader = (key: string, value: unknown) =>
  new Encoder().writeVarIntString(key).writeVarIntBytes(value).buffer;

const keys = ['mq-id', 'content-type', '', 'ключ-é', 'k'.repeat(64), 'x'.repeat(9000)];
const values: (string | Buffer | null)[] = [
  '0190e2b4-9c1a-7cde-8f00-0123456789ab',
  'application/octet-stream',
  '',
  'значение €',
  'v'.repeat(63),
  'v'.repeat(64),
  'w'.repeat(20_000),
  Buffer.from([0, 1, 2, 255]),
  Buffer.alloc(0),
  Buffer.alloc(300, 7),
  null,
];

const recordPath = require.resolve('kafkajs/src/protocol/recordBatch/record/v0/index.js');
const decoderPath = require.resolve('kafkajs/src/protocol/recordBatch/record/v0/decoder.js');

describe('kafkajs record headers', () => {
  // Each case loads a fresh copy of the module (its once-per-process result is module state) and
  // is refused before it touches kafkajs's module cache.
  const fresh = async () => {
    vi.resetModules();
    return await import('../../src/adapters/kafka/kafkajs/record-headers.js');
  };

  it('are not installed when turned off, over another copy of kafkajs, or on an unchecked version', async () => {
    vi.stubEnv('MQKIT_KAFKAJS_RECORD_HEADERS', 'off');
    try {
      expect((await fresh()).installRecordHeaders(kafkajs)).toEqual({
        encoder: false,
        decoder: false,
        skipped: 'MQKIT_KAFKAJS_RECORD_HEADERS=off',
      });
    } finally {
      vi.unstubAllEnvs();
    }
    expect((await fresh()).installRecordHeaders({ Kafka: class {} })).toEqual({
      encoder: false,
      decoder: false,
      skipped: 'another copy of kafkajs',
    });
    const { CHECKED_KAFKAJS_VERSIONS } = await fresh();
    const { version } = require('kafkajs/package.json') as { version: string };
    expect(CHECKED_KAFKAJS_VERSIONS).toContain(version); // the version this suite compares with
    expect(require.cache[recordPath]).toBeUndefined();
    expect(require.cache[decoderPath]).toBeUndefined();
  });

  it('the header encoder writes the bytes kafkajs writes, for every key and value shape', () => {
    let compared = 0;
    for (const key of keys) {
      for (const value of values) {
        const ours = encodeHeader({ key, value });
        expect(Buffer.isBuffer(ours.buf)).toBe(true);
        expect(
          ours.buffer.equals(kafkajsHeader(key, value)),
          `${key.slice(0, 10)} / ${String(value).slice(0, 10)}`,
        ).toBe(true);
        compared++;
      }
    }
    expect(compared).toBe(keys.length * values.length);
  });

  it('are installed before kafkajs loads its record encoder and decoder; records encode and decode as before', () => {
    // This file's worker has not produced or fetched yet.
    expect(require.cache[recordPath]).toBeUndefined();
    expect(require.cache[decoderPath]).toBeUndefined();
    expect(installRecordHeaders(kafkajs)).toEqual({ encoder: true, decoder: true });
    expect(require('kafkajs/src/protocol/recordBatch/header/v0')).toBe(encodeHeader);
    const ours = require.cache[decoderPath];
    delete require.cache[decoderPath];
    const kafkajsDecode = require(decoderPath) as (d: unknown, c: object) => Record<string, unknown>;
    require.cache[decoderPath] = ours;
    const oursDecode = require(decoderPath) as typeof kafkajsDecode;
    expect(oursDecode).not.toBe(kafkajsDecode);

    // kafkajs's own record encoder with its own header encoder, loaded aside.
    const headerPath = require.resolve('kafkajs/src/protocol/recordBatch/header/v0/index.js');
    const saved = [require.cache[recordPath], require.cache[headerPath]];
    delete require.cache[recordPath];
    delete require.cache[headerPath];
    const kafkajsRecord = require(recordPath) as (r: RecordArg) => EncoderLike;
    [require.cache[recordPath], require.cache[headerPath]] = saved;
    const Record = require(recordPath) as typeof kafkajsRecord;
    expect(Record).not.toBe(kafkajsRecord);
    const records: RecordArg[] = [
      {
        key: 'k',
        value: Buffer.from('body'),
        headers: { 'mq-id': 'abc', 'content-type': 'application/json' },
      },
      { key: null, value: Buffer.alloc(5000, 3), headers: { 'x-é': 'ü', b: Buffer.from([1, 2]), e: '' } },
      {
        value: 'text value €',
        headers: { ['h'.repeat(200)]: 'v'.repeat(70_000) },
        offsetDelta: 499,
        timestampDelta: 12,
      },
      { key: Buffer.alloc(0), value: null, headers: { a: 'x' }, offsetDelta: 0, timestampDelta: -3 },
      { key: '', value: Buffer.from('v'), headers: { a: 'x' }, timestampDelta: 2 ** 40 }, // kafkajs's
      { key: 'k', value: Buffer.from('v'), headers: { a: ['1', '2'] } }, // kafkajs's
      { key: 'k', value: Buffer.from('v'), headers: {} }, // kafkajs's
      { key: 'k', value: Buffer.from('v') }, // kafkajs's
    ];
    for (const [i, record] of records.entries()) {
      expect(Record(record).buffer.equals(kafkajsRecord(record).buffer), `record ${i}`).toBe(true);
    }
    const cases: RecordArg[] = [
      {
        key: Buffer.from('k'),
        value: Buffer.from('body'),
        headers: { 'mq-id': 'abc', 'content-type': 'application/json', 'x-é': 'ü' },
        offsetDelta: 3,
        timestampDelta: 7,
      },
      { key: null, value: null },
      { value: Buffer.alloc(1000, 1), headers: { a: ['1', '2', '3'], b: 'x', c: ['only'] } },
      { value: Buffer.from('v'), headers: { n: Buffer.from([0, 255]), e: '' } },
      // kafkajs's quirk, kept since the decoder serves every kafkajs client of the process
      { value: Buffer.from('v'), headers: { toString: 'a', constructor: 'b', ok: 'c' } },
      // timestamp deltas read as numbers (up to 7 bytes) and, beyond, with kafkajs's Long
      { value: Buffer.from('v'), timestampDelta: -5, offsetDelta: 2 },
      { value: Buffer.from('v'), timestampDelta: 2 ** 47 + 3, offsetDelta: 1 },
      { value: Buffer.from('v'), timestampDelta: -(2 ** 47) - 3 },
      { value: Buffer.from('v'), timestampDelta: 2 ** 52 + 1 },
      { value: Buffer.from('v'), timestampDelta: -(2 ** 52) - 1 },
    ];
    const contexts = [
      { firstOffset: '41', firstTimestamp: '1700000000000', magicByte: 2, timestampType: 0 },
      { firstOffset: '9007199254740993', firstTimestamp: '5', timestampType: 1, maxTimestamp: '99' },
      { firstOffset: '0', firstTimestamp: '0', isControlBatch: true },
      { firstOffset: '9007199254740990', firstTimestamp: '-1', timestampType: 0 },
      { firstOffset: '-9007199254740991', firstTimestamp: '9007199254740990', timestampType: 0 },
      { firstOffset: '12', firstTimestamp: '-9223372036854775808', timestampType: 0 },
      { firstOffset: '9223372036854775000', firstTimestamp: '1700000000000', timestampType: 0 },
    ];
    let compared = 0;
    for (const record of cases) {
      const bytes = new Decoder(Record(record).buffer).readVarIntBytes();
      for (const context of contexts) {
        const expected = kafkajsDecode(new Decoder(bytes), context);
        const actual = oursDecode(new Decoder(bytes), context);
        expect(actual).toEqual(expected);
        expect(Object.keys(actual.headers as object)).toEqual(Object.keys(expected.headers as object));
        compared++;
      }
    }
    expect(compared).toBe(70);
    expect(installRecordHeaders(kafkajs)).toEqual({ encoder: true, decoder: true }); // a second call changes nothing
  });
});
