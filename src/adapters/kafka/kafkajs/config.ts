/**
 * kafkajs's configuration from the adapter's: brokers, TLS, SASL, timeouts, log level and the
 * log lines kafkajs writes, and the compression codecs.
 */
import kafkajs, { type KafkaConfig } from 'kafkajs';
import { ConfigError } from '../../../core/errors.js';
import { type Logger, safeLog } from '../../../core/logger.js';
import { scrubText } from '../../../core/redact.js';
import type { Compression, KafkaClientConfig } from '../client.js';

// kafkajs is CommonJS; Node detects only some of its exports as named ESM exports.
const { CompressionCodecs, CompressionTypes, logLevel } = kafkajs;

/** Refuses a compression codec kafkajs has no implementation registered for. */
export function checkCompression(compression: Compression, field: string): void {
  if (compression === 'none' || compression === 'gzip') return;
  try {
    (CompressionCodecs as Record<number, () => unknown>)[COMPRESSION[compression]]?.();
  } catch (error) {
    throw new ConfigError(
      field,
      `kafkajs has no ${compression} codec registered; use 'gzip' (built in) or register one before connecting, e.g. CompressionCodecs[CompressionTypes.Snappy] = require('kafkajs-snappy')`,
      { cause: error },
    );
  }
}

export const COMPRESSION: Record<Compression, kafkajs.CompressionTypes> = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4,
  zstd: CompressionTypes.ZSTD,
};

const LOG_LEVELS: Record<KafkaClientConfig['logLevel'], kafkajs.logLevel> = {
  nothing: logLevel.NOTHING,
  error: logLevel.ERROR,
  warn: logLevel.WARN,
  info: logLevel.INFO,
  debug: logLevel.DEBUG,
};

/** What must never appear in a message or a log line: the SASL password, the TLS key's passphrase. */
export function kafkaSecrets(config: KafkaClientConfig): string[] {
  const secrets = config.sasl === undefined ? [] : [config.sasl.password];
  if (typeof config.ssl === 'object' && typeof config.ssl.passphrase === 'string')
    secrets.push(config.ssl.passphrase);
  return secrets.filter((secret) => secret !== '');
}

/**
 * kafkajs's configuration. Its log lines (at `logLevel` and above) go to `logger` at `debug`,
 * one line each with kafkajs's fields, without the stack (kept at level 'debug'), and with the
 * SASL password, should one ever appear, masked: what fails for good is thrown to the caller
 * or reported by the adapter at `warn`, so kafkajs's retries are chatter.
 */
export function kafkaConfig(config: KafkaClientConfig, logger: Logger): KafkaConfig {
  const secrets = kafkaSecrets(config);
  const mask = (text: string): string => scrubText(text, secrets);
  return {
    clientId: config.clientId,
    brokers: config.brokers,
    ssl: config.ssl,
    sasl: config.sasl as KafkaConfig['sasl'],
    connectionTimeout: config.connectionTimeoutMs,
    authenticationTimeout: config.authenticationTimeoutMs,
    requestTimeout: config.requestTimeoutMs,
    logLevel: LOG_LEVELS[config.logLevel],
    logCreator:
      () =>
      ({ namespace, label, log }) => {
        const { message, timestamp: _timestamp, logger: _logger, stack, ...extra } = log;
        if (config.logLevel === 'debug' && stack !== undefined) extra.stack = stack;
        let fields: Record<string, unknown> = extra;
        if (secrets.some((secret) => secret !== '')) {
          try {
            fields = JSON.parse(mask(JSON.stringify(extra)));
          } catch {
            fields = {};
          }
        }
        safeLog(
          logger,
          'debug',
          { broker: 'kafka', kafkajs: { namespace, level: label, ...fields } },
          mask(`kafkajs ${label} [${namespace}] ${String(message)}`),
        );
      },
  };
}
