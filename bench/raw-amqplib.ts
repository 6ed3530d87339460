import { connect } from 'amqplib';
import { type BenchOptions, type BenchResult, runWorkload } from '../src/cli/bench.js';

/**
 * The raw amqplib baseline for `benchBroker`: the same workload shape with nothing but
 * amqplib. A durable topic exchange feeds a consistent-hash exchange and `partitions` durable
 * queues (the topology mqkit declares for an ordered group); a confirm channel publishes
 * persistent messages in batches of `batch`, `inflight` batches at once, each batch awaited on
 * its confirms, waiting while more than `maxLag` are sent but not handled; keyed messages
 * carry the key in the hashed header, as mqkit does; one consumer per queue with `prefetch`,
 * acking each message. The handler does no work (`handlerMs` is not simulated). The send time
 * travels in the body.
 */
export async function benchRawAmqplib(
  url: string,
  options: BenchOptions & { prefetch: number },
): Promise<BenchResult> {
  const connection = await connect(url);
  const admin = await connection.createChannel();
  const name = `bench-raw-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
  const hash = `${name}:hash`;
  await admin.assertExchange(name, 'topic', { durable: true });
  await admin.assertExchange(hash, 'x-consistent-hash', { durable: true, arguments: { 'hash-header': 'h' } });
  await admin.bindExchange(hash, name, '#');
  const queues: string[] = [];
  for (let p = 0; p < options.partitions; p++) {
    const queue = `${name}:p${p}`;
    await admin.assertQueue(queue, { durable: true, arguments: { 'x-single-active-consumer': true } });
    await admin.bindQueue(queue, hash, '1');
    queues.push(queue);
  }

  const channels: Awaited<ReturnType<typeof connection.createChannel>>[] = [];
  const channel = await connection.createConfirmChannel();
  let unkeyed = 0;
  const publish = (body: Buffer, key: string | undefined) =>
    new Promise<void>((resolve, reject) => {
      // Without a key, a rotating token spreads messages over the hash exchange's queues.
      const headers = { h: key ?? String(unkeyed++ & 1023) };
      channel.publish(name, '', body, { persistent: true, headers }, (error) =>
        error ? reject(error) : resolve(),
      );
    });
  return runWorkload(options, {
    consume: async (received) => {
      for (const queue of queues) {
        const consumer = await connection.createChannel();
        await consumer.prefetch(options.prefetch);
        await consumer.consume(queue, (message) => {
          if (message === null) return;
          consumer.ack(message);
          received(message.content);
        });
        channels.push(consumer);
      }
    },
    send: async (batch) => {
      await Promise.all(batch.map(({ body, key }) => publish(body, key)));
    },
    close: async () => {
      await Promise.all(channels.map((c) => c.close()));
      await channel.close();
      for (const queue of queues) await admin.deleteQueue(queue);
      await admin.deleteExchange(hash);
      await admin.deleteExchange(name);
      await connection.close();
    },
  });
}
