/**
 * Cheaper record-header encoding and decoding for kafkajs, installed in place of its own.
 *
 * kafkajs encodes each record header with a new `Encoder`, which allocates a zero-filled
 * 512-byte buffer of its own, writes the record into another and copies them together; and it
 * decodes a record's headers by spreading the headers object into a new one at each header.
 * mqkit writes two headers on every record (`mq-id`, `content-type`), so these were most of
 * what a message through mqkit cost over the same message with plain kafkajs, which sends
 * none. The replacements write the same bytes (a record with headers into one buffer of the
 * exact size, from Node's pool; see {@link recordEncoder}) and build the same headers object
 * (see {@link recordDecoder}, which keeps kafkajs's quirks). Records without headers are
 * encoded by kafkajs's own encoder, as before.
 *
 * kafkajs loads its record encoder and decoder on its first produce request and first fetch,
 * not when it is imported, so installing them in its module cache before is enough. Each is
 * installed only where all of these hold, else kafkajs's own is used (the bytes on the wire and
 * the records read are the same either way):
 * - kafkajs is a version these were checked against ({@link CHECKED_KAFKAJS_VERSIONS}): the
 *   decoder is a copy of that version's, which must not undo a later release's fixes;
 * - the kafkajs that `require` finds is the one mqkit imported (not so when mqkit is bundled
 *   with its own copy);
 * - kafkajs has not loaded that part already (e.g. for an application's own kafkajs client);
 * - `MQKIT_KAFKAJS_RECORD_HEADERS` is not `off`.
 * Being kafkajs's module cache, the replacements serve every kafkajs client of the process.
 */
import { createRequire, Module } from 'node:module';
import { Utf8Cache } from './utf8-cache.js';

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
  if (text !== undefined) at += buf.write(text, at, 'utf8');
  else if (valueBytes > 0) at += (value as Buffer).copy(buf, at);
  // Every byte written: the buffer is not zeroed.
  if (at !== buf.length) throw new Error(`kafka header ${key}: encoded ${at} of ${buf.length} bytes`);
  return { buf, buffer: buf };
}

/** What kafkajs's record encoder (`record/v0/index.js`) takes. */
export interface RecordArg {
  offsetDelta?: number;
  timestampDelta?: number;
  key?: unknown;
  value?: unknown;
  headers?: Record<string, unknown>;
}
type RecordEncoder = (record: RecordArg) => { buf: Buffer; buffer: Buffer };

const SMALL = 2 ** 30;

/** Bytes of a varint-length byte string (-1: null), or -2 when not a Buffer, string or null. */
function bytesLength(value: unknown): number {
  if (value === null || value === undefined) return -1;
  if (Buffer.isBuffer(value)) return value.length;
  return typeof value === 'string' ? Buffer.byteLength(value, 'utf8') : -2;
}

function writeBytes(buf: Buffer, at: number, value: unknown, length: number): number {
  at = writeVarInt(buf, at, length);
  if (length <= 0) return at;
  if (typeof value === 'string') return at + buf.write(value, at, 'utf8');
  return at + (value as Buffer).copy(buf, at);
}

/**
 * kafkajs's record encoder for records with headers: the same bytes, written once into a
 * buffer of the exact size from Node's pool, where kafkajs writes each header into a
 * zero-filled 512-byte buffer of its own, the record into another, and copies them. Records
 * without headers, with repeated (array) or null header values, key or value neither a Buffer
 * nor a string, or deltas beyond ±2^30 go to kafkajs's encoder (`original`), as every record of
 * a client that sends no headers does.
 */
export function recordEncoder(original: RecordEncoder): RecordEncoder {
  return (record) => {
    const { offsetDelta = 0, timestampDelta = 0, key, value, headers } = record;
    if (headers === undefined || headers === null) return original(record);
    const names = Object.keys(headers);
    if (
      names.length === 0 ||
      !Number.isInteger(offsetDelta) ||
      !Number.isInteger(timestampDelta) ||
      Math.abs(offsetDelta) >= SMALL ||
      Math.abs(timestampDelta) >= SMALL
    ) {
      return original(record);
    }
    const keyBytes = bytesLength(key);
    const valueBytes = bytesLength(value);
    if (keyBytes === -2 || valueBytes === -2) return original(record);
    let size =
      1 +
      sizeOfVarInt(timestampDelta) +
      sizeOfVarInt(offsetDelta) +
      sizeOfVarInt(keyBytes) +
      Math.max(keyBytes, 0) +
      sizeOfVarInt(valueBytes) +
      Math.max(valueBytes, 0) +
      sizeOfVarInt(names.length);
    const lengths = new Array<number>(names.length * 2);
    for (let i = 0; i < names.length; i++) {
      const name = names[i] as string;
      const headerValue = headers[name];
      if (typeof headerValue !== 'string' && !Buffer.isBuffer(headerValue)) return original(record);
      const nameBytes = Buffer.byteLength(name, 'utf8');
      const headerBytes = bytesLength(headerValue);
      lengths[2 * i] = nameBytes;
      lengths[2 * i + 1] = headerBytes;
      size += sizeOfVarInt(nameBytes) + nameBytes + sizeOfVarInt(headerBytes) + headerBytes;
    }
    const buf = Buffer.allocUnsafe(sizeOfVarInt(size) + size);
    let at = writeVarInt(buf, 0, size);
    buf[at++] = 0; // attributes, unused
    at = writeVarInt(buf, at, timestampDelta); // a varlong below 2^30 is this varint
    at = writeVarInt(buf, at, offsetDelta);
    at = writeBytes(buf, at, key, keyBytes);
    at = writeBytes(buf, at, value, valueBytes);
    at = writeVarInt(buf, at, names.length);
    for (let i = 0; i < names.length; i++) {
      const name = names[i] as string;
      at = writeBytes(buf, at, name, lengths[2 * i] as number);
      at = writeBytes(buf, at, headers[name], lengths[2 * i + 1] as number);
    }
    // Every byte written (the buffer is not zeroed): else kafkajs's encoder, never stale memory.
    if (at !== buf.length) return original(record);
    return { buf, buffer: buf };
  };
}

/** The batch context of the last record decoded, and its first timestamp and offset as numbers (NaN: not below 2^53). */
let lastContext: BatchContext | undefined;
let lastFirstTimestamp = Number.NaN;
let lastFirstOffset = Number.NaN;
/** The last timestamp decoded in numbers, and its string. */
let lastTimestamp = Number.NaN;
let lastTimestampText = '';

function safeNumber(value: unknown): number {
  if (typeof value !== 'string' || !/^-?[0-9]{1,16}$/.test(value)) return Number.NaN;
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : Number.NaN;
}

/**
 * A zigzag varlong of at most 7 bytes (below 2^48 either way), as a number; undefined, the
 * decoder's position unchanged, for a longer one (kafkajs's `readVarLong` then reads it).
 */
function readSmallVarLong(decoder: KafkajsDecoder): number | undefined {
  const buffer = decoder.buffer;
  let at = decoder.offset;
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 7; i++) {
    const byte = buffer[at++];
    if (byte === undefined) return undefined;
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) {
      decoder.offset = at;
      return value % 2 === 0 ? value / 2 : -(value + 1) / 2;
    }
    scale *= 128;
  }
  return undefined;
}

/** Header names repeat on every record (mqkit's own: `mq-id`, `content-type`, ...). */
const HEADER_NAMES = new Utf8Cache(32, 64);

/** kafkajs's record decoder (`record/v0/decoder.js`): `(decoder, batchContext) => record`. */
type RecordDecoder = (decoder: KafkajsDecoder, batchContext?: BatchContext) => DecodedRecord;
interface KafkajsDecoder {
  readInt8(): number;
  readVarLong(): unknown;
  readVarInt(): number;
  readVarIntBytes(): Buffer | null;
  buffer: Buffer;
  offset: number;
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
 * order, own properties even for `__proto__`) in one loop. Being installed for every kafkajs
 * client of the process, it keeps kafkajs's quirks too: a header named like an
 * `Object.prototype` member (`toString`, `__proto__`...) sees the inherited member first and
 * gives `[member, value]`, as kafkajs's `obj[key] === undefined` test does. `require` loads
 * kafkajs's own helpers.
 */
export function recordDecoder(require: NodeJS.Require): RecordDecoder {
  const Long = require('kafkajs/src/utils/long.js') as { fromValue(v: unknown): LongLike };
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
    if (batchContext !== lastContext) {
      lastContext = batchContext;
      lastFirstTimestamp = safeNumber(firstTimestamp);
      lastFirstOffset = safeNumber(firstOffset);
    }
    // In numbers when every term is below 2^53 (then String() writes what Long's toString does):
    // kafkajs reads the varlong with a Long per byte and adds with Longs, most of a record's cost.
    const small = readSmallVarLong(decoder);
    const timestampDelta = small ?? decoder.readVarLong();
    let timestamp: string;
    if (timestampType === LOG_APPEND_TIME && maxTimestamp) timestamp = maxTimestamp;
    else {
      const sum = small === undefined ? Number.NaN : lastFirstTimestamp + small;
      if (sum === lastTimestamp) timestamp = lastTimestampText;
      else if (Number.isSafeInteger(sum)) {
        // Records produced in the same millisecond (most of a batch) share one string.
        timestamp = lastTimestampText = String(sum);
        lastTimestamp = sum;
      } else timestamp = Long.fromValue(firstTimestamp).add(timestampDelta).toString();
    }
    const offsetDelta = decoder.readVarInt();
    const offsetSum = lastFirstOffset + offsetDelta;
    const offset = Number.isSafeInteger(offsetSum)
      ? String(offsetSum)
      : Long.fromValue(firstOffset).add(offsetDelta).toString();
    const key = decoder.readVarIntBytes();
    const value = decoder.readVarIntBytes();
    const headers: Record<string, HeaderValues> = {};
    // `readVarIntArray(HeaderDecoder)` inline: no {key, value} per header, no array of them,
    // and the key read without first slicing a Buffer for it.
    const count = decoder.readVarInt();
    for (let i = 0; i < count; i++) {
      const keyBytes = decoder.readVarInt();
      let name: string | null = null;
      if (keyBytes !== -1) {
        name = HEADER_NAMES.read(decoder.buffer, decoder.offset, decoder.offset + keyBytes);
        decoder.offset += keyBytes;
      }
      const headerValue = decoder.readVarIntBytes();
      const before = (headers as Record<string, HeaderValues | undefined>)[name as string];
      const next: HeaderValues =
        before === undefined
          ? headerValue
          : Array.isArray(before)
            ? before.concat([headerValue])
            : [before, headerValue];
      if (name === '__proto__') {
        Object.defineProperty(headers, name, {
          value: next,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      } else headers[name as string] = next;
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

/** kafkajs versions whose encoder and decoder the replacements were compared with, byte for byte. */
export const CHECKED_KAFKAJS_VERSIONS: readonly string[] = ['2.2.4'];

/** Which replacements are in place, and why not where one is not. */
export interface RecordHeadersInstall {
  encoder: boolean;
  decoder: boolean;
  /** Why nothing was installed: turned off, another kafkajs version or copy, not its layout. */
  skipped?: string;
}

let installed: RecordHeadersInstall | undefined;

/**
 * Installs {@link recordEncoder} (over kafkajs's own, which loads {@link encodeHeader} as its
 * header encoder) and {@link recordDecoder}, each under the conditions in this file's header.
 * `imported` is the kafkajs module mqkit imported. Returns which it installed (or found
 * installed); what it did not is kafkajs's own, which encodes and decodes the same. Once per
 * process: later calls return the first result.
 */
export function installRecordHeaders(imported: unknown): RecordHeadersInstall {
  if (installed !== undefined) return installed;
  installed = install(imported);
  return installed;
}

function install(imported: unknown): RecordHeadersInstall {
  const result: RecordHeadersInstall = { encoder: false, decoder: false };
  if (process.env.MQKIT_KAFKAJS_RECORD_HEADERS === 'off')
    return { ...result, skipped: 'MQKIT_KAFKAJS_RECORD_HEADERS=off' };
  try {
    const require = createRequire(import.meta.url);
    const { version } = require('kafkajs/package.json') as { version: string };
    if (!CHECKED_KAFKAJS_VERSIONS.includes(version))
      return { ...result, skipped: `kafkajs ${version} (checked: ${CHECKED_KAFKAJS_VERSIONS.join(', ')})` };
    if (require('kafkajs') !== imported) return { ...result, skipped: 'another copy of kafkajs' };
    const loaded = (file: string) => require.cache[require.resolve(file)] !== undefined;
    const encoder = 'kafkajs/src/protocol/recordBatch/record/v0/index.js';
    if (!loaded(encoder)) {
      // kafkajs's record encoder, loaded with our header encoder, serves what ours passes on.
      replaceModule(require, 'kafkajs/src/protocol/recordBatch/header/v0/index.js', encodeHeader);
      const original = require(encoder) as RecordEncoder;
      delete require.cache[require.resolve(encoder)];
      result.encoder = replaceModule(require, encoder, recordEncoder(original));
    }
    const record = 'kafkajs/src/protocol/recordBatch/record/v0/decoder.js';
    if (!loaded(record)) result.decoder = replaceModule(require, record, recordDecoder(require));
  } catch {
    // Not kafkajs 2.x's layout: its own encoder and decoder are used.
    if (!result.encoder && !result.decoder) return { ...result, skipped: "not kafkajs 2.x's layout" };
  }
  return result;
}
