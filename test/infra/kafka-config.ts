import { join } from 'node:path';
import { LOOPBACK } from './net-utils.js';

/** One combined broker+controller node of a local cluster. */
export interface NodeSpec {
  id: number;
  brokerPort: number;
  controllerPort: number;
  dir: string;
  /** Ports of the TLS listeners, when the cluster has them (see {@link KafkaSecurity}). */
  securePorts?: SecurePorts;
  /**
   * Extra client listeners `EXT0`, `EXT1`, ... on `port`, advertised as `advertisedPort` (a fault
   * proxy in front of it), so that metadata fetched through one points clients through it.
   */
  external?: readonly { port: number; advertisedPort: number }[];
}

/** Ports of a node's TLS listeners. */
export interface SecurePorts {
  /** `SSL`: TLS with a client certificate required (mutual TLS). */
  ssl: number;
  /** `SASL_SSL`: TLS (no client certificate) and SASL PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512. */
  saslSsl: number;
  /** `WRONGNAME` (SSL): TLS with a certificate that does not name 127.0.0.1. */
  wrongName: number;
}

/**
 * TLS and SASL listeners of a test cluster, beside PLAINTEXT (which the brokers use among
 * themselves and the test infra for readiness). Key and certificate files are PEM: Kafka 3.9
 * reads a `PEM` keystore file holding the PKCS#8 private key followed by the certificate.
 */
export interface KafkaSecurity {
  /** The CA that signed every certificate: the truststore of the `SSL` listener's client certificates. */
  caFile: string;
  /** Unencrypted key + certificate (for 127.0.0.1) in one PEM file. */
  serverBundle: string;
  /** Unencrypted key + certificate for another host name in one PEM file (listener `WRONGNAME`). */
  wrongNameBundle: string;
  /** SASL PLAIN users (name to password) of the `SASL_SSL` listener. */
  plainUsers: Record<string, string>;
  /**
   * SCRAM users of the `SASL_SSL` listener, written into the metadata log by the storage format
   * (`--add-scram`), so they exist before the broker takes its first connection.
   */
  scramUsers: readonly { mechanism: 'SCRAM-SHA-256' | 'SCRAM-SHA-512'; name: string; password: string }[];
}

/** The storage tool's `--add-scram` arguments for the SCRAM users. */
export function scramArgs(security: KafkaSecurity | undefined): string[] {
  return (security?.scramUsers ?? []).flatMap((u) => [
    '--add-scram',
    `${u.mechanism}=[name=${u.name},password=${u.password}]`,
  ]);
}

/** server.properties lines of the TLS and SASL listeners. */
function securityProperties(security: KafkaSecurity): Record<string, string> {
  const users = Object.entries(security.plainUsers)
    .map(([name, password]) => `user_${name}="${password}"`)
    .join(' ');
  return {
    'ssl.keystore.type': 'PEM',
    'ssl.keystore.location': security.serverBundle,
    'ssl.truststore.type': 'PEM',
    'ssl.truststore.location': security.caFile,
    'listener.name.ssl.ssl.client.auth': 'required',
    'listener.name.sasl_ssl.ssl.client.auth': 'none',
    'listener.name.wrongname.ssl.client.auth': 'none',
    'listener.name.wrongname.ssl.keystore.type': 'PEM',
    'listener.name.wrongname.ssl.keystore.location': security.wrongNameBundle,
    'listener.name.sasl_ssl.sasl.enabled.mechanisms': 'PLAIN,SCRAM-SHA-256,SCRAM-SHA-512',
    'listener.name.sasl_ssl.plain.sasl.jaas.config': `org.apache.kafka.common.security.plain.PlainLoginModule required ${users};`,
    'listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config':
      'org.apache.kafka.common.security.scram.ScramLoginModule required;',
    'listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config':
      'org.apache.kafka.common.security.scram.ScramLoginModule required;',
    // A failed SASL login is answered at once (the default holds the answer back 100 ms).
    'connection.failed.authentication.delay.ms': '0',
  };
}

/**
 * JVM flags shared by the broker and the storage tool: `heap` first, then G1
 * tuned like Kafka's own scripts, headless, and logging to `<node dir>/server.log`.
 */
export function jvmFlags(spec: NodeSpec, heap: readonly string[]): string[] {
  return [
    ...heap,
    '-XX:+UseG1GC',
    '-XX:MaxGCPauseMillis=20',
    '-XX:InitiatingHeapOccupancyPercent=35',
    '-XX:+ExplicitGCInvokesConcurrent',
    '-Djava.awt.headless=true',
    // Both are set so the same flags work for 3.x (reload4j) and 4.x (log4j2).
    `-Dlog4j.configuration=file:${join(spec.dir, 'log4j.properties')}`,
    `-Dlog4j2.configurationFile=${join(spec.dir, 'log4j2.properties')}`,
    '-Dlog4j2.shutdownHookEnabled=false',
    `-Dkafka.logs.dir=${spec.dir}`,
  ];
}

/**
 * server.properties of one node: KRaft combined mode, static quorum `voters`,
 * listeners on 127.0.0.1, settings sized for a 2-core machine; with 3 brokers,
 * replication factor 3 and min.insync.replicas 2.
 */
export function serverProperties(
  spec: NodeSpec,
  voters: string,
  brokers: number,
  security?: KafkaSecurity,
): string {
  const replicated = brokers >= 3;
  const secure = spec.securePorts;
  const extra =
    secure === undefined || security === undefined
      ? ''
      : `,SSL://${LOOPBACK}:${secure.ssl},SASL_SSL://${LOOPBACK}:${secure.saslSsl},WRONGNAME://${LOOPBACK}:${secure.wrongName}`;
  const external = spec.external ?? [];
  const ext = (f: (e: { port: number; advertisedPort: number }, i: number) => string): string =>
    external.map((e, i) => `,${f(e, i)}`).join('');
  const props: Record<string, string | number | boolean> = {
    'process.roles': 'broker,controller',
    'node.id': spec.id,
    'controller.quorum.voters': voters,
    listeners: `PLAINTEXT://${LOOPBACK}:${spec.brokerPort},CONTROLLER://${LOOPBACK}:${spec.controllerPort}${extra}${ext((e, i) => `EXT${i}://${LOOPBACK}:${e.port}`)}`,
    'advertised.listeners': `PLAINTEXT://${LOOPBACK}:${spec.brokerPort}${extra}${ext((e, i) => `EXT${i}://${LOOPBACK}:${e.advertisedPort}`)}`,
    'controller.listener.names': 'CONTROLLER',
    'inter.broker.listener.name': 'PLAINTEXT',
    'listener.security.protocol.map': `CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT${
      extra === '' ? '' : ',SSL:SSL,SASL_SSL:SASL_SSL,WRONGNAME:SSL'
    }${ext((_e, i) => `EXT${i}:PLAINTEXT`)}`,
    'log.dirs': join(spec.dir, 'data'),
    'num.network.threads': 2,
    'num.io.threads': 2,
    'num.recovery.threads.per.data.dir': 1,
    'background.threads': 2,
    'num.partitions': 1,
    'auto.create.topics.enable': true,
    'delete.topic.enable': true,
    'default.replication.factor': replicated ? 3 : 1,
    'min.insync.replicas': replicated ? 2 : 1,
    'offsets.topic.num.partitions': 1,
    'offsets.topic.replication.factor': replicated ? 3 : 1,
    'transaction.state.log.num.partitions': 1,
    'transaction.state.log.replication.factor': replicated ? 3 : 1,
    'transaction.state.log.min.isr': replicated ? 2 : 1,
    // Kafka 4.x share groups; ignored (with a warning) by 3.x.
    'share.coordinator.state.topic.num.partitions': 1,
    'share.coordinator.state.topic.replication.factor': replicated ? 3 : 1,
    'share.coordinator.state.topic.min.isr': replicated ? 2 : 1,
    'group.initial.rebalance.delay.ms': 0,
    'log.retention.hours': 1,
    'log.segment.bytes': 16 * 1024 * 1024,
    'log.retention.check.interval.ms': 60_000,
    ...(secure === undefined || security === undefined ? {} : securityProperties(security)),
  };
  return `${Object.entries(props)
    .map(([k, v]) => `${k}=${v}`)
    .join('\n')}\n`;
}

/** reload4j (Kafka 3.x) configuration writing INFO to `file`. */
export function log4jProperties(file: string): string {
  return `log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=${file}
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.request.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
log4j.logger.org.apache.kafka.storage=WARN
log4j.logger.kafka.log=WARN
`;
}

/** log4j2 (Kafka 4.x) configuration writing INFO to `file`. */
export function log4j2Properties(file: string): string {
  return `status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = ${file}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.storage.name = org.apache.kafka.storage
logger.storage.level = WARN
logger.log.name = kafka.log
logger.log.level = WARN
`;
}
