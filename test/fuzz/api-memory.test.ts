import { apiFuzzSuite } from './api-suite.js';
import { urls } from './arbitraries.js';

// The embedded broker: the cheapest target, so it takes the most cases. Huge partition counts
// are fuzzed in limits-memory.test.ts, in a child process, since they may exhaust the heap.
const name = `fuzz-shared-${process.pid}`;

apiFuzzSuite({
  kind: 'memory',
  url: () => `memory://${name}`,
  urls: urls({
    schemes: ['memory', 'memory', 'memory', 'MEMORY', 'Memory', 'amqp', 'nats', 'http', 'mem0ry', ''],
    hosts: ['fz-a', 'fz-b', '', 'a b', '127.0.0.1', '[::1]', 'ü', '%zz', 'x'.repeat(300), 'a%2Fb'],
    ports: ['', '', '', ':1', ':0', ':65536', ':99999', ':abc', ':-1'],
    paths: ['', '', '/', '/vhost', '/%2f', '/a/b', '/%zz', '/ü'],
    queries: [
      '',
      '',
      '?partitions=2',
      '?partitions=1e9',
      '?partitions=0x10',
      '?partitions=-1',
      '?partitions=',
      '?retention=abc',
      '?retention=5',
      '?foo=bar',
      '?partitions=2&partitions=3',
      '?%zz=1',
      '#frag',
    ],
  }),
  boundMs: 5000,
  weights: { connect: 1, producer: 1, send: 2, oneWay: 1, subscribe: 1, topics: 1 },
  hugeBodies: [1024 * 1024 + 1, 5 * 1024 * 1024],
});
