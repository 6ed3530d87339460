import { performance } from 'node:perf_hooks';
import { connect } from 'amqplib';
import { type BenchOptions, type BenchResult, summarize } from '../src/cli/bench.js';

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

  const latencies = new Float64Array(options.messages);
  let received = 0;
  let next = 0;
  let wakeProducers: (() => void) | undefined;
  let finish: () => void = () => {};
  const allReceived = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const consumers = await Promise.all(
    queues.map(async (queue) => {
      const channel = await connection.createChannel();
      await channel.prefetch(options.prefetch);
      await channel.consume(queue, (message) => {
        if (message === null) return;
        if (received < options.messages)
          latencies[received] = performance.now() - message.content.readDoubleLE(0);
        channel.ack(message);
        if (++received === options.messages) finish();
        if (wakeProducers !== undefined && next - received <= options.maxLag / 2) {
          wakeProducers();
          wakeProducers = undefined;
        }
      });
      return channel;
    }),
  );

  const channel = await connection.createConfirmChannel();
  const template = Buffer.alloc(Math.max(8, options.size), 0x61);
  const started = performance.now();
  let unkeyed = 0;
  const publish = (body: Buffer, key: string | undefined) =>
    new Promise<void>((resolve, reject) => {
      // Without a key, a rotating token spreads messages over the hash exchange's queues.
      const headers = { h: key ?? String(unkeyed++ & 1023) };
      channel.publish(name, '', body, { persistent: true, headers }, (error) =>
        error ? reject(error) : resolve(),
      );
    });
  const lane = async () => {
    while (next < options.messages) {
      while (options.maxLag > 0 && next - received > options.maxLag) {
        await new Promise<void>((resolve) => {
          const previous = wakeProducers;
          wakeProducers = () => {
            previous?.();
            resolve();
          };
        });
      }
      const count = Math.min(options.batch, options.messages - next);
      next += count;
      const confirms: Promise<void>[] = new Array(count);
      for (let i = 0; i < count; i++) {
        const body = Buffer.from(template);
        body.writeDoubleLE(performance.now(), 0);
        confirms[i] = publish(
          body,
          options.keys > 0 ? `key-${(next - count + i) % options.keys}` : undefined,
        );
      }
      await Promise.all(confirms);
    }
  };
  await Promise.all(Array.from({ length: options.inflight }, lane));
  const produced = performance.now();
  await allReceived;
  const ended = performance.now();

  await Promise.all(consumers.map((c) => c.close()));
  await channel.close();
  for (const queue of queues) await admin.deleteQueue(queue);
  await admin.deleteExchange(hash);
  await admin.deleteExchange(name);
  await connection.close();
  return summarize(options, latencies, started, produced, ended);
}
