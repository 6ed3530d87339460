import { afterAll, beforeAll, describe, it } from 'vitest';
import { connect } from '../../src/index.js';
import { type KafkaServer, startKafka } from '../infra/kafka.js';

// Kills a node, so a 3-node cluster of its own; started only by `npm run test:kafka-cluster`
// (MQKIT_TEST_KAFKA_BROKERS=3), since three JVMs are too dear for every `npm test`.
describe.skipIf(process.env.MQKIT_TEST_KAFKA_BROKERS !== '3')(
  'kafka: connect while one node of three is down (own 3-node cluster: runs in npm run test:kafka-cluster, skipped elsewhere)',
  () => {
    let server: KafkaServer;

    beforeAll(async () => {
      server = await startKafka({ brokers: 3 });
    }, 180_000);

    afterAll(async () => {
      await server?.stop();
    }, 60_000);

    it('connect succeeds through a live seed while the killed node is still in the metadata', async () => {
      const [seed] = server.bootstrap.split(',');
      await server.killNode(2);
      // Until the controller fences it (seconds), the seed still lists the dead node; kafkajs
      // then connects to a random listed node after the seed answered. Each connect picks
      // again, so several make picking the dead node all but certain before the fix.
      for (let i = 0; i < 12; i++) {
        const broker = await connect(`kafka://${seed}?logLevel=nothing`);
        await broker.close();
      }
    }, 40_000);
  },
);
