import { createHash } from 'node:crypto';
import type { Channel, GetMessage, Options } from 'amqplib';
import { ConfigError, isMqError } from '../../core/errors.js';
import { otherTagsError, type ResolvedSubscribeOptions, tagsKey } from '../../core/options.js';
import { type RabbitConnection, replyCode, toMqError } from './connection.js';
import { names } from './names.js';
import type { Publisher } from './publisher.js';
import type { Topology } from './topology.js';

/**
 * Joining a clustering group, step 1. Members of a group share its queues only if they agree
 * on the queues' shape: `order: 'concurrent'` reads the group queue, key and partition order
 * read partition queues, and `tags` decide the bindings. Each live member consumes an
 * auto-deleted queue declared with the shape in its arguments (order class in `x-max-length`,
 * a hash of the tags in `x-max-length-bytes`), so RabbitMQ refuses (406) a member that
 * subscribes otherwise while any member of the group runs. Once all members are gone the queue
 * goes, and the group may change shape (queues and bindings of the old shape stay; delete them
 * by hand). Returns the channel that holds the shape: close it when the member leaves.
 */
export async function holdGroupShape(
  connection: RabbitConnection,
  options: ResolvedSubscribeOptions,
): Promise<Channel> {
  const queue = names.groupShape(options.topic, options.group);
  const tags = tagsKey(options.tags);
  const args = {
    'x-max-length': options.order === 'concurrent' ? 1 : 2,
    'x-max-length-bytes': tags === '' ? 0 : createHash('sha1').update(tags).digest().readUInt32BE(0) >>> 1,
  };
  for (let attempt = 1; ; attempt++) {
    const channel = await connection.channel();
    try {
      // Durable: RabbitMQ 4.3 refuses transient non-exclusive queues. x-expires removes a shape
      // queue whose declarer died before it consumed (auto-delete needs a consumer first).
      await channel.assertQueue(queue, {
        durable: true,
        autoDelete: true,
        arguments: { ...args, 'x-expires': 60_000 },
      });
      await channel.consume(queue, () => {}, { noAck: true });
      return channel;
    } catch (error) {
      await channel.close().catch(() => {});
      const code = replyCode(error);
      if (code === 406) throw shapeConflict(options, error);
      // 404: the last other member left between our declare and consume (auto-delete).
      if (code === 404 && attempt < 3) continue;
      throw toMqError(error, `join group ${options.group} of ${options.topic}`);
    }
  }
}

function shapeConflict(options: ResolvedSubscribeOptions, error: unknown): ConfigError {
  const text = error instanceof Error ? error.message : String(error);
  if (text.includes("'x-max-length-bytes'")) return otherTagsError(options, error);
  return new ConfigError(
    'subscribe.order',
    `group '${options.group}' of topic '${options.topic}' has running members that subscribed with ${options.order === 'concurrent' ? "order 'key' or 'partition'" : "order 'concurrent'"}, which reads other queues on RabbitMQ; members of a group must agree on concurrent vs ordered consumption (or use another group name)`,
    { cause: error },
  );
}

/**
 * Joining a clustering group, step 2, once, when the group's queues were created: moves the
 * messages the topic held for want of a binding (see `Topology.topic`) back through the topic
 * exchange, now that a new group is bound. It gets them, as a new Kafka group reads the topic
 * from its start, together with any other group whose bindings take them; the rest go back to
 * the holding queue (where their TTL starts again). Each is acknowledged there only after its
 * copy was confirmed. Held messages come after messages sent since the group's bindings were
 * made.
 */
export async function releaseUnrouted(
  ctx: { connection: RabbitConnection; topology: Topology; publisher: Publisher },
  topic: string,
): Promise<void> {
  if (!ctx.topology.holdsUnrouted(topic)) return;
  const queue = names.unrouted(topic);
  const exchange = names.topicExchange(topic);
  const channel = await ctx.connection.channel();
  try {
    let left = (await channel.checkQueue(queue)).messageCount;
    while (left > 0) {
      // Up to 256 at a time: their copies are confirmed together, then each is acknowledged.
      const batch: GetMessage[] = [];
      while (batch.length < Math.min(left, 256)) {
        const held = await channel.get(queue, { noAck: false });
        if (held === false) break;
        batch.push(held);
      }
      if (batch.length === 0) break;
      left -= batch.length;
      const copies = batch.map((held) => {
        const { userId: _sender, ...properties } = held.properties as Options.Publish;
        return ctx.publisher.publish(exchange, held.fields.routingKey, held.content, {
          ...properties,
          mandatory: true,
        });
      });
      const settled = await Promise.allSettled(copies);
      settled.forEach((result, i) => {
        const held = batch[i] as GetMessage;
        if (result.status === 'fulfilled') channel.ack(held);
        else channel.nack(held, false, true);
      });
      const failed = settled.find((r) => r.status === 'rejected');
      if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
    }
  } catch (error) {
    throw isMqError(error) ? error : toMqError(error, `release held messages of ${topic}`);
  } finally {
    await channel.close().catch(() => {});
  }
}
