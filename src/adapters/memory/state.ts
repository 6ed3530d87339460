import type { Headers } from '../../core/message.js';
import { partitionForKey } from '../../core/partitioner.js';
import type { WireMessage } from '../../core/wire.js';
import type { MemoryGroup } from './group.js';
import { PartitionLog, type StoredRecord } from './partition-log.js';

export interface MemoryTopic {
  readonly name: string;
  /** Consumed records kept per partition for replay; older consumed ones are released. */
  readonly retention: number;
  readonly partitions: PartitionLog[];
  /** Groups reading this topic; told when records arrive or partitions are added. */
  readonly groups: Set<MemoryGroup>;
  /** Round-robin cursor for records without a key. */
  nextPartition: number;
}

/**
 * The embedded broker's state, shared by every connection to the same `memory://name` for the
 * life of the process, as a server outlives its clients.
 */
export class MemoryState {
  readonly topics = new Map<string, MemoryTopic>();
  readonly groups = new Map<string, MemoryGroup>();
  private appendsSinceTrim = 0;

  constructor(
    readonly defaultPartitions: number,
    /** Consumed records kept per partition for replay; older consumed ones are released. */
    readonly retention: number,
  ) {}

  topic(name: string, partitions = this.defaultPartitions): MemoryTopic {
    let topic = this.topics.get(name);
    if (topic === undefined) {
      topic = { name, retention: this.retention, partitions: [], groups: new Set(), nextPartition: 0 };
      this.topics.set(name, topic);
    }
    if (topic.partitions.length < partitions) {
      while (topic.partitions.length < partitions)
        topic.partitions.push(new PartitionLog(topic.partitions.length));
      for (const group of topic.groups) group.rebalance();
    }
    return topic;
  }

  /** Stores a message; `now` (default: the clock) is its timestamp. */
  append(message: WireMessage, headers: Headers = message.headers, now?: number): StoredRecord {
    const topic = this.topic(message.topic);
    const count = topic.partitions.length;
    const partition =
      message.key === undefined ? topic.nextPartition++ % count : partitionForKey(message.key, count);
    const log = topic.partitions[partition] as PartitionLog;
    const record = log.append(message.key, headers, message.payload, now);
    if (++this.appendsSinceTrim >= 1024) {
      this.appendsSinceTrim = 0;
      releaseConsumed(topic);
    }
    for (const group of topic.groups) group.notify(partition);
    return record;
  }
}

/**
 * Releases records every group has consumed, keeping the last `retention` per partition for
 * replay. A topic nobody reads keeps at most `retention` records per partition. Called as
 * records are appended and as groups commit, so memory stays bounded either way.
 */
export function releaseConsumed(topic: MemoryTopic): void {
  topic.partitions.forEach((log, partition) => {
    if (log.size <= topic.retention) return;
    let limit = log.end - topic.retention;
    for (const group of topic.groups) limit = Math.min(limit, group.committed(partition));
    log.releaseBefore(limit);
  });
}

const states = new Map<string, MemoryState>();

/** The shared state of `memory://name`, created on first use with these settings. */
export function memoryState(name: string, defaultPartitions: number, retention: number): MemoryState {
  let state = states.get(name);
  if (state === undefined) {
    state = new MemoryState(defaultPartitions, retention);
    states.set(name, state);
  }
  return state;
}
