/**
 * The kafkajs implementation of the client seam (`../client.ts`): the files of this folder are
 * the only ones of mqkit that import kafkajs, and this one is their entry. The adapter's entry
 * (`../index.ts`) imports it, and `connect` loads that on first use of a `kafka://` URL.
 *
 * - `config.ts`: kafkajs's configuration (brokers, TLS, SASL, timeouts, logging) and compression
 * - `errors.ts`: kafkajs errors recognised and mapped to `MqError`s
 * - `connection.ts`: reaching the cluster, and disconnecting under a connect in progress
 * - `partitioner.ts`, `assigner.ts`: the producers' partitioner, the consumers' assigner
 * - `producer.ts`, `consumer.ts`, `admin.ts`: the implementations of the seam's clients
 * - `record-headers.ts`: cheaper record-header encoding and decoding, installed into kafkajs
 */
import kafkajs from 'kafkajs';
import type { Logger } from '../../../core/logger.js';
import type { KafkaClient, KafkaClientConfig } from '../client.js';
import { KafkajsAdmin } from './admin.js';
import { kafkaConfig } from './config.js';
import { reachCluster } from './connection.js';
import { KafkajsConsumer } from './consumer.js';
import { PARTITIONS_ADDED_GRACE_MS, type PartitionMinimums } from './partitioner.js';
import { KafkajsProducer } from './producer.js';
import { installRecordHeaders } from './record-headers.js';

export { checkCompression } from './config.js';

let headersLogged = false;

/**
 * The kafkajs implementation of the client seam. kafkajs's own log lines go to `logger` (see
 * {@link kafkaConfig}).
 */
export function createKafkajsClient(config: KafkaClientConfig, logger: Logger): KafkaClient {
  // Before kafkajs loads its own (on its first produce and fetch); said once per process.
  const headers = installRecordHeaders(kafkajs);
  if (!headersLogged) {
    headersLogged = true;
    logger.debug({ ...headers }, 'kafkajs record headers');
  }
  const kafka = new kafkajs.Kafka(kafkaConfig(config, logger));
  const admin = new KafkajsAdmin(kafka, config, logger);
  const minimums: PartitionMinimums = new Map();
  return {
    admin,
    connect: () => reachCluster(config, logger),
    producer: (options) => new KafkajsProducer(kafka, config, options.idempotent, minimums),
    // A Kafka instance of its own per consumer: kafkajs shares committed-offset bookkeeping
    // between the consumers of one instance by group id, and a rejoin of one clears the
    // other's, which crashes it when several subscriptions use the same group.
    consumer: (consumerConfig) =>
      new KafkajsConsumer(new kafkajs.Kafka(kafkaConfig(config, logger)), consumerConfig, config),
    partitionsAdded: (topic, count) => {
      minimums.set(topic, { count, until: Date.now() + PARTITIONS_ADDED_GRACE_MS });
    },
    closing: () => admin.closing(),
    close: () => admin.close(),
  };
}
