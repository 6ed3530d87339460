import { names } from '../../adapters/rabbitmq/names.js';
import { kafkaHosts } from './raw-kafkajs.js';

/** What one mqkit run declared on its broker: the topic, and on RabbitMQ its group's topology. */
export interface RunResources {
  url: string;
  /** Broker kind: `kafka`, `rabbitmq`, `rocketmq` (others have nothing to delete). */
  broker: string;
  topic: string;
  group: string;
  partitions: number;
}

/**
 * Deletes what one mqkit bench run declared, best effort and quietly: a run's figures do not
 * depend on it, so a failure (broker gone, resource already deleted) is ignored. Kafka: the
 * topic (kafkajs admin). RabbitMQ (amqplib): the group's queues (shared, or partition queues
 * with their consistent-hash and members exchanges), the partition-count and unrouted queues
 * and exchanges, and the topic exchange; each delete on its own channel, since a refused
 * delete closes the channel it ran on.
 */
export async function deleteRunResources(r: RunResources): Promise<void> {
  try {
    if (r.broker === 'kafka') await deleteKafkaTopic(r.url, r.topic);
    else if (r.broker === 'rabbitmq') await deleteRabbitTopology(r);
    else if (r.broker === 'rocketmq') await deleteRocketTopic(r);
  } catch {
    // best effort: see above
  }
}

async function deleteKafkaTopic(url: string, topic: string): Promise<void> {
  const { default: kafkajs } = await import('kafkajs');
  const admin = new kafkajs.Kafka({ brokers: kafkaHosts(url), logLevel: kafkajs.logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    await admin.deleteTopics({ topics: [topic], timeout: 5000 });
  } finally {
    await admin.disconnect();
  }
}

/** Deletes one RabbitMQ queue, best effort and quietly, like {@link deleteRunResources}. */
export async function deleteRabbitQueue(url: string, queue: string): Promise<void> {
  try {
    const amqp = await import('amqplib');
    const connection = await amqp.connect(url);
    connection.on('error', () => {});
    try {
      const ch = await connection.createChannel();
      ch.on('error', () => {});
      await ch.deleteQueue(queue);
    } finally {
      await connection.close();
    }
  } catch {
    // already gone or broker unreachable: best effort
  }
}

/** RocketMQ: the topic (broker admin API through the URL's name server) and the run's group. */
async function deleteRocketTopic(r: RunResources): Promise<void> {
  const { RocketMqAdmin } = await import('../../adapters/rocketmq/admin.js');
  const { nativeName } = await import('../../adapters/rocketmq/names.js');
  const admin = new RocketMqAdmin(new URL(r.url).searchParams.get('namesrv') ?? undefined, 5000);
  try {
    if (r.group !== '') await admin.deleteGroup(nativeName(r.group, 'group')).catch(() => {});
    await admin.deleteTopic(nativeName(r.topic, 'topic'));
  } finally {
    admin.close();
  }
}

async function deleteRabbitTopology(r: RunResources): Promise<void> {
  const amqp = await import('amqplib');
  const connection = await amqp.connect(r.url);
  connection.on('error', () => {});
  try {
    const each = async (
      op: (ch: Awaited<ReturnType<typeof connection.createChannel>>) => Promise<unknown>,
    ) => {
      try {
        const ch = await connection.createChannel();
        ch.on('error', () => {});
        await op(ch);
        await ch.close();
      } catch {
        // already gone or refused: best effort
      }
    };
    const queues = [
      names.groupQueue(r.topic, r.group),
      ...Array.from({ length: r.partitions }, (_, p) => names.partitionQueue(r.topic, r.group, p)),
      names.partitionsMeta(r.topic),
      names.unrouted(r.topic),
    ];
    for (const queue of queues) await each((ch) => ch.deleteQueue(queue));
    const exchanges = [
      names.hashExchange(r.topic, r.group),
      names.membersExchange(r.topic, r.group),
      names.unrouted(r.topic),
      names.topicExchange(r.topic),
    ];
    for (const exchange of exchanges) await each((ch) => ch.deleteExchange(exchange));
  } finally {
    await connection.close();
  }
}
