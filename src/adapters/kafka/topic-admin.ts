import type { Backlog } from '../../core/broker.js';
import { groupName as checkGroup, intOption, topicName, userTopicName } from '../../core/options.js';
import type { AdminClient } from './client.js';

/**
 * `max.message.bytes` of topics this adapter creates: a 1 MiB body (the adapter's limit) plus
 * headers and record overhead must fit, and a dead-letter copy adds its error headers.
 */
export const TOPIC_MAX_MESSAGE_BYTES = 2 * 1024 * 1024;

/** Topic creation, partition increase, backlog and start positions, on the admin client. */
export class TopicAdmin {
  private readonly created = new Map<string, Promise<void>>();

  constructor(
    private readonly admin: AdminClient,
    /** Called after this adapter raised a topic's partition count. */
    private readonly partitionsAdded: (topic: string, count: number) => void,
  ) {}

  /**
   * `Admin.ensureTopic`: creates the topic, or raises its partition count to `partitions`.
   * Resolves once every broker serves the topic's metadata with a leader for every partition
   * (also for a topic that existed: someone may have created it a moment ago), so consumers
   * and producers that reach any broker next find it; a broker that cannot be reached is
   * skipped, at least one must answer. Waits at most `requestTimeoutMs` for that, then rejects
   * with `TimeoutError` (with `ClosedError` once the connection is closing).
   */
  async ensureTopic(
    topic: string,
    partitions: number | undefined,
    config: Record<string, string> = {},
  ): Promise<void> {
    const name = topicName(topic, 'ensureTopic.topic');
    if (partitions !== undefined) intOption(partitions, 'ensureTopic.partitions', 1, 1);
    // Looked up first: creating needs a permission that reading an existing topic does not.
    let count = await this.admin.partitionCount(name);
    if (count === undefined) {
      const created = await this.admin.createTopic(name, {
        partitions: partitions ?? 1,
        replicationFactor: Math.min(3, await this.admin.brokerCount()),
        config: { 'max.message.bytes': String(TOPIC_MAX_MESSAGE_BYTES), ...config },
      });
      if (created) return;
      count = await this.admin.partitionCount(name); // created by someone else meanwhile
    }
    if (partitions === undefined || count === undefined || count >= partitions) {
      if (count !== undefined) await this.admin.waitForTopic(name, count);
      return;
    }
    await this.admin.createPartitions(name, partitions);
    this.partitionsAdded(name, partitions);
  }

  /** Creates a topic the adapter itself needs, once per connection (later calls share the first). */
  ensureOnce(topic: string, partitions: number, config: Record<string, string> = {}): Promise<void> {
    let done = this.created.get(topic);
    if (done === undefined) {
      done = this.ensureTopic(topic, partitions, config);
      this.created.set(topic, done);
      done.catch(() => this.created.delete(topic));
    }
    return done;
  }

  partitionCount(topic: string): Promise<number | undefined> {
    return this.admin.partitionCount(topic);
  }

  /**
   * End offset minus committed offset per partition. A partition the group has not committed
   * on counts from the first retained offset; a missing topic has no partitions. `consumers`
   * is the number of group members assigned the partition (0 for a group with no members),
   * absent (unknown) while the group rebalances or when describing the group failed: the
   * offsets are still reported.
   */
  async backlog(topic: string, group: string): Promise<Backlog> {
    const name = userTopicName(topic, 'backlog.topic');
    const groupName = checkGroup(group, 'backlog.group');
    if ((await this.admin.partitionCount(name)) === undefined) {
      return { topic: name, group: groupName, total: 0, partitions: [] };
    }
    const [offsets, committed, consumers] = await Promise.all([
      this.admin.topicOffsets(name),
      this.admin.committedOffsets(groupName, name),
      this.admin.partitionConsumers(groupName, name).catch(() => undefined),
    ]);
    const partitions = offsets
      .sort((a, b) => a.partition - b.partition)
      .map(({ partition, low, high }) => {
        const position = committed.get(partition);
        const backlog = Math.max(0, high - Math.max(position ?? low, low));
        const known = consumers === undefined ? {} : { consumers: consumers.get(partition) ?? 0 };
        return position === undefined
          ? { partition, backlog, end: String(high), ...known }
          : { partition, backlog, committed: String(position), end: String(high), ...known };
      });
    return {
      topic: name,
      group: groupName,
      total: partitions.reduce((sum, p) => sum + p.backlog, 0),
      partitions,
    };
  }

  /**
   * Where `group` starts reading `topic` on partitions it has no committed offset for: the end
   * offset ('latest') or the first offset at or after a time. Partitions with one are absent.
   */
  async startPositions(
    group: string,
    topic: string,
    startFrom: 'latest' | { timestamp: number },
    groupIsNew: boolean,
  ): Promise<Map<number, number>> {
    const [committed, positions] = await Promise.all([
      groupIsNew ? new Map<number, number>() : this.admin.committedOffsets(group, topic),
      startFrom === 'latest'
        ? this.admin.topicOffsets(topic).then((o) => new Map(o.map((p) => [p.partition, p.high])))
        : this.admin.offsetsForTimestamp(topic, startFrom.timestamp),
    ]);
    for (const partition of committed.keys()) positions.delete(partition);
    return positions;
  }
}
