import { inject } from 'vitest';
import { apiFuzzSuite } from './api-suite.js';
import { urls } from './arbitraries.js';

// RabbitMQ: fewer cases than memory (each one talks to the shared broker). Partition counts stay
// small: the broker is shared with the rest of the test run.
const live = new URL(inject('amqpUrl'));

apiFuzzSuite({
  kind: 'rabbitmq',
  url: () => inject('amqpUrl'),
  urls: urls({
    schemes: ['amqp', 'amqp', 'amqp', 'amqps', 'AMQP'],
    hosts: [live.hostname, live.hostname, 'localhost', 'a b', '', '[::1]', 'nohost.invalid', '%zz'],
    ports: [`:${live.port || 5672}`, `:${live.port || 5672}`, '', ':1', ':99999', ':abc', ':0'],
    paths: ['', '', '/', '/%2f', '/nosuchvhost', '/a/b', '/%zz'],
    queries: ['', '', '?heartbeat=5', '?frameMax=0', '?heartbeat=abc', '?channelMax=1', '?foo=bar'],
  }),
  boundMs: 10_000,
  weights: { connect: 0.1, producer: 0.2, send: 0.3, oneWay: 0.1, subscribe: 0.1, topics: 0.1 },
  hugeBodies: [1024 * 1024 + 1, 5 * 1024 * 1024],
});
