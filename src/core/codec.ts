import type { StandardSchemaV1 } from '@standard-schema/spec';
import { ConfigError, DecodeError } from './errors.js';
import { thrownText } from './options.js';

/** Turns a body into bytes and back. `decode` throws (anything) when the bytes are not valid. */
export interface Codec<T> {
  /** Sent as the `content-type` header so any consumer knows how to read the payload. */
  readonly contentType: string;
  encode(value: T): Uint8Array;
  decode(bytes: Uint8Array): T;
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

/** The default: UTF-8 JSON, `content-type: application/json`. */
export const jsonCodec: Codec<unknown> = {
  contentType: 'application/json',
  encode: (value) => {
    const text = JSON.stringify(value);
    if (text === undefined)
      throw new TypeError('body is not JSON-serialisable (undefined, a function or a symbol)');
    return textEncoder.encode(text);
  },
  decode: (bytes) => JSON.parse(textDecoder.decode(bytes)),
};

/** Bytes as they are, `content-type: application/octet-stream`. Delivered as a `Buffer`. */
export const bytesCodec: Codec<Uint8Array> = {
  contentType: 'application/octet-stream',
  encode: (value) => value,
  decode: (bytes) =>
    Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
};

/** A topic with a typed body: a codec, a Standard Schema validator (zod, valibot, arktype...), or both. */
export interface TopicSpec<T> {
  readonly name: string;
  readonly codec: Codec<T> | undefined;
  readonly schema: StandardSchemaV1<unknown, T> | undefined;
}

/**
 * Declares a typed topic. With a schema, bodies are validated when sent (a `ConfigError`-free
 * `DecodeError` is thrown to the sender) and when received (an invalid message goes to the
 * dead-letter topic with a `DecodeError`, and the consumer continues).
 */
export function defineTopic<T = unknown>(
  name: string,
  options: { codec?: Codec<T>; schema?: StandardSchemaV1<unknown, T> } = {},
): TopicSpec<T> {
  if (typeof name !== 'string' || name.length === 0)
    throw new ConfigError('topic', 'must be a non-empty string');
  for (const key of Object.keys(options)) {
    if (key !== 'codec' && key !== 'schema')
      throw new ConfigError(`defineTopic.${key}`, 'unknown option; use codec or schema');
  }
  return Object.freeze({ name, codec: options.codec, schema: options.schema });
}

/** Body bytes plus the content type they were written with. */
export interface EncodedBody {
  payload: Uint8Array;
  contentType: string;
}

/** Encodes a body for `spec` (or for a plain topic name: bytes pass through, the rest is JSON). */
export function encodeBody(body: unknown, spec: TopicSpec<unknown> | undefined): EncodedBody {
  if (spec?.schema) validateSync(spec.schema, body, spec.name);
  if (spec?.codec) return { payload: spec.codec.encode(body), contentType: spec.codec.contentType };
  if (body instanceof Uint8Array) return { payload: body, contentType: bytesCodec.contentType };
  try {
    return { payload: jsonCodec.encode(body), contentType: jsonCodec.contentType };
  } catch (error) {
    throw new DecodeError(`topic ${spec?.name ?? ''}: body cannot be encoded as JSON`, { cause: error });
  }
}

/**
 * Decodes a payload read from the broker. Throws `DecodeError` when the bytes do not parse or
 * the schema rejects them. A missing content type is read as JSON (the default codec).
 * Returns a promise only when the schema validates asynchronously.
 */
export function decodeBody(
  payload: Uint8Array,
  contentType: string | undefined,
  spec: TopicSpec<unknown> | undefined,
): unknown {
  let value: unknown;
  try {
    if (spec?.codec) value = spec.codec.decode(payload);
    else if (contentType === bytesCodec.contentType) value = bytesCodec.decode(payload);
    // Other clients publish text/plain (and text/csv, ...): their bodies arrive as strings.
    else if (contentType?.startsWith('text/')) value = textDecoder.decode(payload);
    else value = jsonCodec.decode(payload);
  } catch (error) {
    throw new DecodeError(
      `cannot decode ${contentType ?? 'application/json'} payload: ${thrownText(error)}`,
      {
        cause: error,
      },
    );
  }
  if (!spec?.schema) return value;
  const result = spec.schema['~standard'].validate(value);
  if (result instanceof Promise) {
    return result.then((r) => {
      if (r.issues) throw schemaError(spec.name, r.issues);
      return r.value;
    });
  }
  if (result.issues) throw schemaError(spec.name, result.issues);
  return result.value;
}

function validateSync(schema: StandardSchemaV1<unknown, unknown>, value: unknown, topic: string): void {
  const result = schema['~standard'].validate(value);
  if (result instanceof Promise) return; // async validators run on the consumer side only
  if (result.issues) throw schemaError(topic, result.issues);
}

function schemaError(topic: string, issues: readonly StandardSchemaV1.Issue[]): DecodeError {
  const list = issues.map((i) => ({
    message: i.message,
    path: i.path?.map((p) => (typeof p === 'object' ? p.key : p)),
  }));
  const first = list[0];
  const where = first?.path?.length ? ` at ${first.path.map(String).join('.')}` : '';
  return new DecodeError(`topic ${topic}: body fails its schema${where}: ${first?.message ?? 'invalid'}`, {
    issues: list,
  });
}
