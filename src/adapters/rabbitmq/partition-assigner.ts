import type { RabbitConnection } from './connection.js';
import { GroupMembership } from './membership.js';
import { names } from './names.js';
import type { GroupQueueOptions, Topology } from './topology.js';

/** What the assigner drives: the subscription's consumers of partition queues. */
export interface PartitionHost {
  /** Partitions this member consumes (actively or as single-active-consumer standby). */
  owned(): ReadonlySet<number>;
  /** Registers a consumer on partition `p`. */
  startPartition(partition: number): Promise<void>;
  /** Finishes `p`'s handlers in flight, acks them, then closes its channel so the next consumer takes over. */
  stopPartition(partition: number): Promise<void>;
}

export interface PartitionAssignerOptions {
  /** Consumers, declarations and the membership's listening channel. */
  connection: RabbitConnection;
  /** Membership announcements (a resource alarm blocks publishing connections only). */
  publishing: RabbitConnection;
  topology: Topology;
  topic: string;
  group: string;
  /** The topic's partition count now; re-read every few heartbeats. */
  partitions: number;
  tags: ReadonlySet<string> | undefined;
  queueOptions: GroupQueueOptions;
  heartbeatMs: number;
  host: PartitionHost;
  /**
   * Reports a failure of a background step (a rebalance, reading the partition count, a
   * membership channel) nobody awaits and that is retried on a later heartbeat: the
   * subscription logs it at `warn` and emits it as an `error` event. Used only while the
   * connection involved is up and this member has not left: otherwise the failure is expected
   * and goes to that connection's `report` (at `debug`), or nowhere once the member left.
   */
  report: (context: string, error: unknown) => void;
}

/** Re-read the partition count every this many heartbeats, to pick up `ensureTopic` raising it. */
const PARTITION_CHECK_BEATS = 5;
/** Longest `subscribe` waits for current owners to hand this member its partitions. */
const JOIN_WAIT_MS = 10_000;

/**
 * Spreads a key-ordered group's partition queues over its members: with members sorted by id,
 * partition p belongs to member p mod M. A member consumes only its partitions; on a change it
 * first lets go of partitions no longer its own (draining them), and registers on new ones,
 * where single-active-consumer keeps it standby until the previous owner let go.
 *
 * Hand-over keeps per-key order: the previous owner stops starting handlers, waits for those
 * running, acks them and only then closes its channel, which requeues the rest at their
 * original positions and activates the next consumer in one step in the broker.
 */
export class PartitionAssigner {
  private readonly membership: GroupMembership;
  private timer: NodeJS.Timeout | undefined;
  private beats = 0;
  private queue: Promise<void> = Promise.resolve();
  private pending = false;
  private stopped = false;
  private readonly connection: RabbitConnection;
  private readonly topology: Topology;
  private readonly topic: string;
  private readonly group: string;
  private partitions: number;
  private readonly tags: ReadonlySet<string> | undefined;
  private readonly queueOptions: GroupQueueOptions;
  private readonly heartbeatMs: number;
  private readonly host: PartitionHost;
  private readonly report: (context: string, error: unknown) => void;

  constructor(options: PartitionAssignerOptions) {
    this.connection = options.connection;
    this.topology = options.topology;
    this.topic = options.topic;
    this.group = options.group;
    this.partitions = options.partitions;
    this.tags = options.tags;
    this.queueOptions = options.queueOptions;
    this.heartbeatMs = options.heartbeatMs;
    this.host = options.host;
    this.report = options.report;
    this.membership = new GroupMembership({
      connection: options.connection,
      publishing: options.publishing,
      topology: options.topology,
      topic: options.topic,
      group: options.group,
      heartbeatMs: options.heartbeatMs,
      onChange: () => this.rebalance(),
      report: (context, error, via) => this.failed(context, error, via),
    });
  }

  /**
   * A background step failed (see `PartitionAssignerOptions.report`). Once this member left
   * (closing, or starting over after a reconnect) a step in flight fails for that reason.
   */
  private failed(context: string, error: unknown, via: RabbitConnection): void {
    if (this.stopped) return;
    if (via.connected && !via.isClosed) this.report(context, error);
    else via.report(context, error);
  }

  /** Joins, takes this member's share, and resolves once it is active on it (bounded wait). */
  async start(): Promise<void> {
    await this.membership.join();
    this.timer ??= setInterval(this.beat, this.heartbeatMs);
    // While others consume (or consumers of a dropped connection linger), give members time to
    // answer the hello before taking a share.
    const answered = Date.now() + this.heartbeatMs * 1.5;
    while (
      !this.stopped &&
      this.membership.members().length < 2 &&
      Date.now() < answered &&
      (await this.othersPresent())
    ) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await this.rebalance();
    const deadline = Date.now() + JOIN_WAIT_MS;
    while (!this.stopped && Date.now() < deadline && !(await this.activeOnShare())) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Leaves the group after the host stopped its partitions. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    await this.queue;
    await this.membership.leave();
  }

  /** Partitions this member should consume now. */
  share(): Set<number> {
    const members = this.membership.members();
    const index = members.indexOf(this.membership.id);
    const mine = new Set<number>();
    for (let p = 0; p < this.partitions; p++) if (p % members.length === index) mine.add(p);
    return mine;
  }

  /** Runs one balancing step after those already queued (at most one waits). */
  rebalance(): Promise<void> {
    if (this.pending) return this.queue;
    this.pending = true;
    this.queue = this.queue.then(async () => {
      this.pending = false;
      if (this.stopped) return;
      const mine = this.share();
      const owned = this.host.owned();
      await Promise.all([
        ...[...owned].filter((p) => !mine.has(p)).map((p) => this.host.stopPartition(p)),
        ...[...mine].filter((p) => !owned.has(p)).map((p) => this.host.startPartition(p)),
      ]);
    });
    // Retried on the next heartbeat.
    this.queue = this.queue.catch((error: unknown) =>
      this.failed(
        `group ${this.group} of ${this.topic}: rebalancing partitions failed`,
        error,
        this.connection,
      ),
    );
    return this.queue;
  }

  private readonly beat = (): void => {
    this.membership.beat();
    if (++this.beats % PARTITION_CHECK_BEATS === 0) void this.checkPartitions();
    void this.rebalance();
  };

  private async checkPartitions(): Promise<void> {
    try {
      const count = await this.topology.partitions(this.topic);
      if (count <= this.partitions) return;
      await this.topology.orderedGroup(this.topic, this.group, count, this.tags, this.queueOptions);
      this.partitions = count;
      await this.rebalance();
    } catch (error) {
      // Checked again in a few heartbeats.
      this.failed(
        `group ${this.group} of ${this.topic}: reading the partition count failed`,
        error,
        this.connection,
      );
    }
  }

  private async consumers(partition: number): Promise<number> {
    const queue = names.partitionQueue(this.topic, this.group, partition);
    const ok = await this.connection.withAdmin(`check ${queue}`, (ch) => ch.checkQueue(queue));
    return ok.consumerCount;
  }

  private async othersPresent(): Promise<boolean> {
    for (let p = 0; p < this.partitions; p++) if ((await this.consumers(p)) > 0) return true;
    return false;
  }

  /** True when no other consumer holds any partition of this member's share. */
  private async activeOnShare(): Promise<boolean> {
    for (const p of this.share()) if ((await this.consumers(p)) > 1) return false;
    return true;
  }
}
