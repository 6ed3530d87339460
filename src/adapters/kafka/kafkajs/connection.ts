/** Reaching the cluster, and closing kafkajs clients under a connect in progress. */
import kafkajs from 'kafkajs';
import { ConnectionError } from '../../../core/errors.js';
import type { Logger } from '../../../core/logger.js';
import { MAX_TIMER_MS } from '../../../core/options.js';
import { scrubError, scrubText } from '../../../core/redact.js';
import { settlesWithin } from '../../../core/timers.js';
import { oneLine, tlsFailure } from '../../../core/tls.js';
import { CONNECT_ATTEMPTS, type KafkaClientConfig } from '../client.js';
import { kafkaConfig, kafkaSecrets } from './config.js';
import { type KafkajsErrorShape, someCause } from './errors.js';

/**
 * `KafkaClient.connect`: one admin connection of its own, with kafkajs's retries cut to
 * `CONNECT_ATTEMPTS` (about 100 ms and 200 ms apart) and every handshake request bounded by
 * `authenticationTimeoutMs` (kafkajs waits at least `requestTimeout` for each, API versions
 * included, and retries five times: minutes against a broker that never answers). kafkajs
 * has settled for good when its retrier rejects, so disconnecting then leaves nothing behind.
 */
export async function reachCluster(config: KafkaClientConfig, logger: Logger): Promise<void> {
  const probe = new kafkajs.Kafka({
    ...kafkaConfig(config, logger),
    requestTimeout: config.authenticationTimeoutMs,
    retry: { retries: CONNECT_ATTEMPTS - 1, initialRetryTime: 100, maxRetryTime: 1000 },
  }).admin();
  // The first Metadata request of a fresh client goes to the seed broker, the one connected
  // to; kafkajs then connects to a random broker of the answer, outside its retries, which
  // fails (or waits out connectionTimeout) while that broker is down. Only the seed's answer
  // decides whether the cluster was reached: kafkajs emits this event once a response has
  // arrived, and connect goes on without waiting for the rest.
  let seedAnswered = false;
  let onSeedAnswer = (): void => {};
  const seedAnswer = new Promise<void>((resolve) => {
    onSeedAnswer = resolve;
  });
  probe.on(probe.events.REQUEST, (event) => {
    if (event.payload.apiName !== 'Metadata') return;
    seedAnswered = true;
    onSeedAnswer();
  });
  let described: Promise<unknown> = Promise.resolve();
  try {
    await probe.connect();
    // A SASL listener answers the version handshake without a login and closes the connection
    // at the first other request: asking for the brokers makes connect fail here, not every
    // request after it.
    described = probe.describeCluster();
    described.catch((error: unknown) => {
      if (seedAnswered)
        logger.debug(
          { error: scrubText(String(error), kafkaSecrets(config)) },
          'kafka: the seed broker answered; another broker could not be reached while connecting',
        );
    });
    await Promise.race([described, seedAnswer]);
  } catch (error) {
    const refused = someCause(error, (e) => e.name === 'KafkaJSSASLAuthenticationError');
    const tls = tlsFailure(error);
    const e = error as KafkajsErrorShape;
    const text = e.message ?? String(error);
    const sasl = config.sasl;
    let why = text;
    if (refused && sasl !== undefined) {
      why = `authentication failed (SASL ${sasl.mechanism.toUpperCase()}, user '${sasl.username}'): wrong user name or password, or the mechanism is not enabled on this listener; ${text}`;
    } else if (tls !== undefined) {
      why = `${tls.reason} (TLS ${tls.code}: ${oneLine(text)}); see kafka.ssl`;
    } else if (someCause(error, (c) => c.name === 'KafkaJSConnectionClosedError')) {
      // Hint only at what is not configured: with both set, the close has some other cause.
      const missing = [
        ...(sasl === undefined
          ? [
              'a SASL_SSL or SASL_PLAINTEXT listener needs a user and password (kafka://user:password@host or kafka.sasl)',
            ]
          : []),
        ...(config.ssl === false ? ['an SSL or SASL_SSL listener needs ssl=true'] : []),
      ];
      why = `the broker closed the connection during the handshake (${text})${missing.length > 0 ? `: ${missing.join(', ')}` : ''}`;
    }
    const secrets = kafkaSecrets(config);
    throw new ConnectionError(
      scrubText(`cannot connect to the Kafka cluster at ${config.brokers.join(',')}: ${why}`, secrets),
      {
        cause: scrubError(error, secrets),
        retriable: !refused && tls === undefined,
      },
    );
  } finally {
    // describeCluster may still be connecting to another broker: disconnect again once it settles.
    await disconnectAfter(described, 0, () => probe.disconnect());
  }
}

/**
 * How long closing waits for a connect in progress before disconnecting anyway: a broker gone
 * silent after the cluster was reached keeps kafkajs retrying for minutes.
 */
export const connectWaitMs = (config: KafkaClientConfig): number =>
  Math.min(config.connectionTimeoutMs + config.authenticationTimeoutMs, MAX_TIMER_MS);

/**
 * Waits up to `ms` for `work` to settle, then runs `disconnect`; if `work` was still pending,
 * runs `disconnect` again once it settles, so that nothing it opened meanwhile stays open.
 */
export async function disconnectAfter(work: Promise<unknown>, ms: number, disconnect: () => Promise<void>) {
  const settled = Promise.allSettled([work]);
  if (!(await settlesWithin(settled, ms))) void settled.then(disconnect).catch(() => {});
  await disconnect().catch(() => {});
}
