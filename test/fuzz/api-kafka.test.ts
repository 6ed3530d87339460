import { inject } from 'vitest';
import { apiFuzzSuite } from './api-suite.js';
import { urls } from './arbitraries.js';

// Kafka: the costliest target (a subscription joins a group), so the fewest cases. Partition
// counts stay small: the broker is shared with the rest of the test run.
const live = inject('kafkaUrl').replace(/^kafka:\/\//, '');

apiFuzzSuite({
  kind: 'kafka',
  url: () => inject('kafkaUrl'),
  urls: urls({
    schemes: ['kafka', 'kafka', 'kafka', 'KAFKA'],
    hosts: [
      live,
      live,
      live,
      `${live},${live}`,
      `${live},`,
      'a b',
      '',
      '[::1]',
      'nohost.invalid',
      '127.0.0.1',
    ],
    ports: ['', '', '', ':1', ':99999', ':abc'],
    paths: ['', '', '/', '/x'],
    queries: [
      '',
      '',
      '?ssl=true',
      '?ssl=yes',
      '?saslMechanism=plain',
      '?saslMechanism=scram-sha-512',
      '?logLevel=debug',
      '?clientId=',
      '?foo=1',
    ],
  }),
  boundMs: 10_000,
  weights: { connect: 0.1, producer: 0.2, send: 0.015, oneWay: 0.05, subscribe: 0.03, topics: 0.1 },
  hugeBodies: [1024 * 1024 + 1, 3 * 1024 * 1024],
});
