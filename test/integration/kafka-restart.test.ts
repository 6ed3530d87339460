import { afterAll, beforeAll, describe, it } from 'vitest';
import { type Broker, connect } from '../../src/index.js';
import { Collector, uniqueName } from '../../src/testing/index.js';
import { type KafkaServer, startKafka } from '../infra/kafka.js';
import { expectNothingAcknowledgedLost } from './crash-helpers.js';

// This test kills a broker, so it runs on a single-node cluster of its own, never the shared one.
describe('kafka: broker crash and restart (own cluster)', () => {
  let server: KafkaServer;
  let broker: Broker | undefined;

  beforeAll(async () => {
    server = await startKafka();
  }, 180_000);

  afterAll(async () => {
    await broker?.close();
    await server?.stop();
  }, 60_000);

  it('after a SIGKILL and restart, every send it acknowledged is delivered, the rest fail retriably, consumers resume', async () => {
    const b = await connect(`kafka://${server.bootstrap}?logLevel=nothing`);
    broker = b;
    const topic = uniqueName('crash');
    await b.ensureTopic(topic, { partitions: 2 });
    const got = new Collector<{ i: number }>();
    const ordered = new Collector<{ i: number }>();
    await b.subscribe({ topic, group: uniqueName('c'), concurrency: 4 }, got.handler());
    await b.subscribe({ topic, group: uniqueName('o'), order: 'key', concurrency: 4 }, ordered.handler());
    await expectNothingAcknowledgedLost({
      producer: b.producer({ timeoutMs: 60_000 }),
      topic,
      collectors: { concurrent: got, 'key order': ordered },
      crash: () => server.killNode(),
      restart: () => server.restartNode(),
      timeoutMs: 120_000,
    });
  }, 420_000);
});
