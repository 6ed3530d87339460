import { type BenchOptions, type BenchResult, type ProgressListener, runWorkload } from '../bench.js';

/**
 * The raw amqplib baseline: the same workload with nothing but amqplib (loaded on first use,
 * as the RabbitMQ adapter loads it). A durable topic exchange feeds a consistent-hash exchange
 * and `partitions` durable single-active-consumer queues (the topology mqkit declares for an
 * ordered group), or with `order: 'concurrent'` one durable queue (mqkit's concurrent group); one confirm channel per workload producer publishes persistent messages
 * (acks `none`: a plain channel, no confirms), each batch awaited on its confirms; keyed
 * messages carry the key in the hashed header, as mqkit does; one consumer per queue and
 * workload consumer with `prefetch`, acking each message. The handler does no work. A failing
 * connection or producer channel fails the pending sends with its error, and a batch without
 * its confirms after `CONFIRM_TIMEOUT_MS` counts as refused (see {@link sendGuard}). Everything
 * it declared is deleted at the end.
 */
export async function benchRawAmqplib(
  url: string,
  options: BenchOptions & { prefetch: number },
  onProgress?: ProgressListener,
): Promise<BenchResult> {
  const amqp = await import('amqplib');
  const connection = await amqp.connect(url);
  const guard = sendGuard(CONFIRM_TIMEOUT_MS);
  // Without these listeners an 'error' event would throw; with them, a failing connection or
  // channel settles every pending send with its error instead of leaving confirms pending.
  connection.on('error', guard.fail);
  connection.on('close', () => guard.fail(new Error('connection closed')));
  const admin = await connection.createChannel();
  admin.on('error', () => {});
  const name = `bench-raw-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
  const hash = `${name}:hash`;
  // As mqkit declares a group: order 'concurrent' is one durable queue its consumers compete
  // on; key and partition order go through a consistent-hash exchange to `partitions`
  // single-active-consumer queues.
  const shared = options.order === 'concurrent';
  const queues: string[] = [];
  // Deletes what the run declared, at its end or when a declaration fails; best effort (a
  // failed declaration may have closed the admin channel, and then this deletes nothing).
  const deleteTopology = async () => {
    const quietly = async (step: () => Promise<unknown>) => {
      try {
        await step();
      } catch {
        // best effort: already gone, or the channel broke
      }
    };
    for (const queue of queues) await quietly(() => admin.deleteQueue(queue));
    if (!shared) await quietly(() => admin.deleteExchange(hash));
    await quietly(() => admin.deleteExchange(name));
  };
  try {
    await admin.assertExchange(name, 'topic', { durable: true });
    if (shared) {
      const queue = `${name}:group`;
      queues.push(queue);
      await admin.assertQueue(queue, { durable: true });
      await admin.bindQueue(queue, name, '#');
    } else {
      await admin.assertExchange(hash, 'x-consistent-hash', {
        durable: true,
        arguments: { 'hash-header': 'h' },
      });
      await admin.bindExchange(hash, name, '#');
      for (let p = 0; p < options.partitions; p++) {
        const queue = `${name}:p${p}`;
        queues.push(queue);
        await admin.assertQueue(queue, { durable: true, arguments: { 'x-single-active-consumer': true } });
        await admin.bindQueue(queue, hash, '1');
      }
    }
  } catch (error) {
    await deleteTopology();
    await connection.close().catch(() => {});
    throw error;
  }
  const confirms = options.acks !== 'none';
  type Channel = Awaited<ReturnType<typeof connection.createConfirmChannel>>;
  const consumerChannels: Awaited<ReturnType<typeof connection.createChannel>>[] = [];
  // One channel per workload producer, created once and shared by its lanes.
  const producerChannels: Promise<Channel>[] = [];
  const channelOf = (p: number) => {
    let channel = producerChannels[p];
    if (channel === undefined) {
      channel = (
        confirms
          ? connection.createConfirmChannel()
          : (connection.createChannel() as unknown as Promise<Channel>)
      ).then((created) => {
        created.on('error', guard.fail);
        created.on('close', () => guard.fail(new Error('channel closed')));
        return created;
      });
      producerChannels[p] = channel;
    }
    return channel;
  };
  let unkeyed = 0;
  return runWorkload(
    options,
    {
      consume: async (received) => {
        for (let c = 0; c < options.consumers; c++) {
          for (const queue of queues) {
            const consumer = await connection.createChannel();
            consumer.on('error', () => {});
            await consumer.prefetch(options.prefetch);
            await consumer.consume(queue, (message) => {
              if (message === null) return;
              consumer.ack(message);
              received(message.content);
            });
            consumerChannels.push(consumer);
          }
        }
      },
      send: async (batch, p) => {
        const channel = await channelOf(p);
        // Without a key, a rotating token spreads messages over the hash exchange's queues.
        const publish = (body: Buffer, key: string | undefined) => {
          const headers = { h: key ?? String(unkeyed++ & 1023) };
          if (!confirms) {
            channel.publish(name, '', body, { persistent: true, headers });
            return Promise.resolve();
          }
          return new Promise<void>((resolve, reject) => {
            channel.publish(name, '', body, { persistent: true, headers }, (error) =>
              error ? reject(error) : resolve(),
            );
          });
        };
        await guard.settle(() => Promise.all(batch.map(({ body, key }) => publish(body, key))));
      },
      close: async () => {
        guard.closing();
        // Best effort: a broken channel must not turn the measured run into a failure.
        for (const c of consumerChannels) await c.close().catch(() => {});
        for (const c of producerChannels) await (await c.catch(() => undefined))?.close().catch(() => {});
        await deleteTopology();
        await connection.close().catch(() => {});
      },
    },
    { library: 'raw amqplib', broker: 'rabbitmq', ...(onProgress ? { onProgress } : {}) },
  );
}

/** How long a batch waits for its publisher confirms before its send counts as refused. */
export const CONFIRM_TIMEOUT_MS = 30_000;

/**
 * Settles sends that the client would leave pending: a send fails with the error of the
 * connection or channel that failed while it waited (or fails at once after one failed), or
 * with a timeout when its confirms take longer than `timeoutMs`. After `closing()`, failures
 * (the run's own close) are ignored.
 */
export function sendGuard(timeoutMs: number): {
  fail: (error: Error) => void;
  settle: (send: () => Promise<unknown>) => Promise<void>;
  closing: () => void;
} {
  const pending = new Set<(error: Error) => void>();
  let broken: Error | undefined;
  let closed = false;
  return {
    fail: (error) => {
      if (closed) return;
      broken ??= error;
      for (const reject of [...pending]) reject(error);
    },
    settle: (send) => {
      if (broken !== undefined) return Promise.reject(broken);
      return new Promise<void>((resolve, reject) => {
        const done = (error?: Error) => {
          clearTimeout(timer);
          pending.delete(done);
          if (error === undefined) resolve();
          else reject(error);
        };
        const timer = setTimeout(
          () => done(new Error(`no publisher confirm within ${timeoutMs} ms`)),
          timeoutMs,
        );
        pending.add(done);
        send().then(
          () => done(),
          (error: unknown) => done(error instanceof Error ? error : new Error(String(error))),
        );
      });
    },
    closing: () => {
      closed = true;
    },
  };
}
