/**
 * Cheaper record-header encoding and decoding for kafkajs, installed in place of its own.
 *
 * kafkajs encodes each record header with a new `Encoder`, which allocates a zero-filled
 * 512-byte buffer of its own, then copies the few bytes written into the record; and it decodes
 * a record's headers by spreading the headers object into a new one at each header. mqkit
 * writes two headers on every record (`mq-id`, `content-type`), so these were most of what a
 * message through mqkit cost over the same message with plain kafkajs, which sends none. The
 * replacements write the same bytes (into a buffer of the exact size, from Node's pool) and
 * build the same headers object (see {@link recordDecoder} for the one corner where it differs).
 *
 * kafkajs loads its record encoder and decoder on its first produce request and first fetch,
 * not when it is imported, so installing them in its module cache before is enough. Where that
 * is too late (kafkajs loaded them already, e.g. for an application's own kafkajs client) or
 * the files are not where kafkajs 2.x keeps them, nothing is replaced and kafkajs's own are
 * used: the bytes on the wire and the records read are the same either way. Being kafkajs's
 * module cache, the replacements serve every kafkajs client of the process.
 */
import { createRequire, Module } from 'node:module';

/** `Header => Key: varint-length string, Value: varint-length bytes (-1: null)`, as kafkajs. */
export interface HeaderArg {
  key: string;
  value: Buffer | string | null | undefined;
}

/** Size of a zigzag varint, as kafkajs's `Encoder.sizeOfVarInt`. */
function sizeOfVarInt(value: number): number {
  let encoded = (value << 1) ^ (value >> 31);
  let bytes = 1;
  while ((encoded & 0xffffff80) !== 0) {
    bytes++;
    encoded >>>= 7;
  }
  return bytes;
}

function writeVarInt(buf: Buffer, at: number, value: number): number {
  let encoded = (value << 1) ^ (value >> 31);
  while ((encoded & 0xffffff80) !== 0) {
    buf[at++] = (encoded & 0x7f) | 0x80;
    encoded >>>= 7;
  }
  buf[at++] = encoded;
  return at;
}

/**
 * Encodes one header as kafkajs's `header/v0` does, returning what kafkajs's record encoder
 * reads of an `Encoder` (`buf` checked to be a Buffer, `buffer` the bytes written).
 */
export function encodeHeader({ key, value }: HeaderArg): { buf: Buffer; buffer: Buffer } {
  const keyBytes = Buffer.byteLength(key, 'utf8');
  const text = value === null || value === undefined || Buffer.isBuffer(value) ? undefined : String(value);
  const valueBytes =
    value === null || value === undefined
      ? -1
      : text === undefined
        ? (value as Buffer).length
        : Buffer.byteLength(text, 'utf8');
  const buf = Buffer.allocUnsafe(
    sizeOfVarInt(keyBytes) + keyBytes + sizeOfVarInt(valueBytes) + Math.max(valueBytes, 0),
  );
  let at = writeVarInt(buf, 0, keyBytes);
  at += buf.write(key, at, 'utf8');
  at = writeVarInt(buf, at, valueBytes);
  if (text !== undefined) buf.write(text, at, 'utf8');
  else if (valueBytes > 0) (value as Buffer).copy(buf, at);
  return { buf, buffer: buf };
}

/** kafkajs's record decoder (`record/v0/decoder.js`): `(decoder, batchContext) => record`. */
type RecordDecoder = (decoder: KafkajsDecoder, batchContext?: BatchContext) => DecodedRecord;
interface KafkajsDecoder {
  readInt8(): number;
  readVarLong(): unknown;
  readVarInt(): number;
  readVarIntBytes(): Buffer | null;
  readVarIntArray<T>(item: (decoder: KafkajsDecoder) => T): T[];
}
interface BatchContext {
  firstOffset?: string;
  firstTimestamp?: string;
  magicByte?: number;
  isControlBatch?: boolean;
  timestampType?: number;
  maxTimestamp?: string;
}
type HeaderValues = Buffer | null | (Buffer | null)[];
interface DecodedRecord {
  headers: Record<string, HeaderValues>;
  [field: string]: unknown;
}
interface LongLike {
  add(value: unknown): LongLike;
  toString(): string;
}

/**
 * kafkajs's record decoder, the same but for the headers: kafkajs builds the headers object
 * with a `reduce` that spreads it into a new object at each header (with a computed key, which
 * V8 handles slowly), about 8% of a consumer's CPU with mqkit's two headers per record. This
 * builds the same object (same keys in the same order, a repeated key's values in an array in
 * order, own properties even for `__proto__`) in one loop. One difference: a header named like
 * an `Object.prototype` member (`toString`, `constructor`...) gets its value, where kafkajs's
 * `obj[key] === undefined` test sees the inherited member and gives `[member, value]` (mqkit
 * reads the last value of a repeated header, so it reads the same either way). `require`
 * loads kafkajs's own helpers.
 */
export function recordDecoder(require: NodeJS.Require): RecordDecoder {
  const Long = require('kafkajs/src/utils/long.js') as { fromValue(v: unknown): LongLike };
  const HeaderDecoder = require('kafkajs/src/protocol/recordBatch/header/v0/decoder.js') as (
    decoder: KafkajsDecoder,
  ) => { key: string; value: Buffer | null };
  const { LOG_APPEND_TIME } = require('kafkajs/src/protocol/timestampTypes.js') as {
    LOG_APPEND_TIME: number;
  };
  return (decoder, batchContext = {}) => {
    const {
      firstOffset,
      firstTimestamp,
      magicByte,
      isControlBatch = false,
      timestampType,
      maxTimestamp,
    } = batchContext;
    const attributes = decoder.readInt8();
    const timestampDelta = decoder.readVarLong();
    const timestamp =
      timestampType === LOG_APPEND_TIME && maxTimestamp
        ? maxTimestamp
        : Long.fromValue(firstTimestamp).add(timestampDelta).toString();
    const offsetDelta = decoder.readVarInt();
    const offset = Long.fromValue(firstOffset).add(offsetDelta).toString();
    const key = decoder.readVarIntBytes();
    const value = decoder.readVarIntBytes();
    const headers: Record<string, HeaderValues> = {};
    for (const header of decoder.readVarIntArray(HeaderDecoder)) {
      const name = header.key;
      const before = Object.hasOwn(headers, name) ? headers[name] : undefined;
      const next: HeaderValues =
        before === undefined
          ? header.value
          : Array.isArray(before)
            ? before.concat([header.value])
            : [before, header.value];
      if (name === '__proto__') {
        Object.defineProperty(headers, name, {
          value: next,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      } else headers[name] = next;
    }
    return {
      magicByte,
      attributes, // Record level attributes are presently unused
      timestamp,
      offset,
      key,
      value,
      headers,
      isControlRecord: isControlBatch,
      batchContext,
    };
  };
}

/** Puts `exports` in kafkajs's module cache as `file`, unless loaded already (then: whether it is ours). */
function replaceModule(require: NodeJS.Require, file: string, exports: unknown): boolean {
  const path = require.resolve(file);
  const loaded = require.cache[path];
  if (loaded !== undefined) return loaded.exports === exports;
  const entry = new Module(path);
  entry.filename = path;
  entry.loaded = true;
  entry.exports = exports;
  require.cache[path] = entry;
  return true;
}

let installed: { encoder: boolean; decoder: boolean } | undefined;

/**
 * Installs {@link encodeHeader} as kafkajs's header encoder and {@link recordDecoder} as its
 * record decoder, each unless kafkajs loaded its own already (its record encoder holds the
 * header encoder it loaded). Returns which it installed (or found installed); what it did not
 * is kafkajs's own, which encodes and decodes the same. Once per process.
 */
export function installRecordHeaders(): { encoder: boolean; decoder: boolean } {
  if (installed !== undefined) return installed;
  const result = { encoder: false, decoder: false };
  try {
    const require = createRequire(import.meta.url);
    const loaded = (file: string) => require.cache[require.resolve(file)] !== undefined;
    if (!loaded('kafkajs/src/protocol/recordBatch/record/v0/index.js')) {
      result.encoder = replaceModule(
        require,
        'kafkajs/src/protocol/recordBatch/header/v0/index.js',
        encodeHeader,
      );
    }
    const record = 'kafkajs/src/protocol/recordBatch/record/v0/decoder.js';
    if (!loaded(record)) result.decoder = replaceModule(require, record, recordDecoder(require));
  } catch {
    // Not kafkajs 2.x's layout: its own encoder and decoder are used.
  }
  installed = result;
  return result;
}
