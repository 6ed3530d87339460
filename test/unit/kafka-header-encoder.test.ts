import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { encodeHeader, installHeaderEncoder } from '../../src/adapters/kafka/kafkajs/header-encoder.js';

const require = createRequire(import.meta.url);
type EncoderLike = { buffer: Buffer };
const Encoder = require('kafkajs/src/protocol/encoder') as new () => {
  writeVarIntString(v: string): { writeVarIntBytes(v: unknown): EncoderLike };
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

describe('kafkajs header encoder', () => {
  it('writes the bytes kafkajs writes, for every key and value shape', () => {
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

  it('is installed before kafkajs loads its record encoder, which then encodes records as before', () => {
    const recordPath = require.resolve('kafkajs/src/protocol/recordBatch/record/v0/index.js');
    expect(require.cache[recordPath]).toBeUndefined(); // this file's worker has not sent yet
    expect(installHeaderEncoder()).toBe(true);
    expect(require('kafkajs/src/protocol/recordBatch/header/v0')).toBe(encodeHeader);
    const Record = require(recordPath) as (r: object) => EncoderLike;
    const headers = { 'mq-id': 'abc', 'content-type': 'application/json', 'x-é': 'ü' };
    const encoded = Record({ key: Buffer.from('k'), value: Buffer.from('body'), headers }).buffer;
    // The record's tail is its headers: a varint count (3 → 6), then each header as kafkajs writes it.
    const tail = Buffer.concat([
      Buffer.from([6]),
      ...Object.entries(headers).map(([k, v]) => kafkajsHeader(k, v)),
    ]);
    expect(encoded.subarray(encoded.length - tail.length).equals(tail)).toBe(true);
    expect(installHeaderEncoder()).toBe(true); // a second call changes nothing
  });
});
