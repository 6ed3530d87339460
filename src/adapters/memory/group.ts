import { type MemoryTopic, releaseConsumed } from './state.js';
import type { MemoryTransport } from './transport.js';

/**
 * A consumer group on one topic: committed positions per partition, members, and which member
 * owns which partition. A partition moves to a new owner only after the old owner's handlers
 * on it finished (or its close timed out), so per-key order survives rebalances.
 */
export class MemoryGroup {
  readonly members: MemoryTransport[] = [];
  /** Attempts so far of messages that failed, by `partition:offset`, so counts survive redelivery. */
  readonly attempts = new Map<string, number>();
  private readonly positions: number[] = [];
  private readonly owners: (MemoryTransport | undefined)[] = [];
  private readonly handovers: Promise<void>[] = [];
  private commitsSinceRelease = 0;

  constructor(
    readonly topic: MemoryTopic,
    readonly name: string,
    startFrom: 'earliest' | 'latest' | { timestamp: number },
    /** Broadcast groups belong to one subscription and vanish with it. */
    readonly ephemeral: boolean,
  ) {
    topic.partitions.forEach((log, p) => {
      this.positions[p] =
        startFrom === 'earliest'
          ? log.start
          : startFrom === 'latest'
            ? log.end
            : log.offsetForTimestamp(startFrom.timestamp);
    });
    topic.groups.add(this);
  }

  /** The group's committed position on `partition`: the next offset it will read. */
  committed(partition: number): number {
    // A partition added after the group was created is read from its beginning.
    return this.positions[partition] ?? this.topic.partitions[partition]?.start ?? 0;
  }

  /** Whether a member owns `partition` now. */
  owned(partition: number): boolean {
    return this.owners[partition] !== undefined;
  }

  commit(partition: number, offset: number): void {
    this.positions[partition] = offset;
    if (++this.commitsSinceRelease >= 1024) {
      this.commitsSinceRelease = 0;
      releaseConsumed(this.topic);
    }
  }

  notify(partition: number): void {
    this.owners[partition]?.wake();
  }

  join(member: MemoryTransport): void {
    this.members.push(member);
    this.rebalance();
  }

  /** Removes a member and resolves once its partitions were handed over. */
  async leave(member: MemoryTransport): Promise<void> {
    const index = this.members.indexOf(member);
    if (index >= 0) this.members.splice(index, 1);
    this.rebalance();
    await Promise.all(this.handovers);
    if (this.ephemeral && this.members.length === 0) this.topic.groups.delete(this);
  }

  /** Assigns partition p to member p mod n (members in join order) and hands over what moved. */
  rebalance(): void {
    const n = this.members.length;
    for (let p = 0; p < this.topic.partitions.length; p++) {
      const desired = n === 0 ? undefined : this.members[p % n];
      const current = this.owners[p];
      if (current === desired) continue;
      this.owners[p] = desired;
      const previous = this.handovers[p] ?? Promise.resolve();
      this.handovers[p] = previous.then(async () => {
        if (current !== undefined) await current.revoke(p);
        if (desired !== undefined && this.owners[p] === desired) desired.assign(p, this.committed(p));
      });
    }
  }
}
