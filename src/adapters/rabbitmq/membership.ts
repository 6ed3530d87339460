import { randomUUID } from 'node:crypto';
import type { Channel } from 'amqplib';
import type { RabbitConnection } from './connection.js';
import { names } from './names.js';
import type { Topology } from './topology.js';

interface Announcement {
  type: 'hello' | 'here' | 'bye';
  id: string;
}

export interface GroupMembershipOptions {
  /** The listening channel's connection. */
  connection: RabbitConnection;
  /** The announcing channel's connection. */
  publishing: RabbitConnection;
  topology: Topology;
  topic: string;
  group: string;
  heartbeatMs: number;
  /** Members came or went. */
  onChange: () => void;
  /** A failure nobody awaits, on the channel of `via`: see `PartitionAssignerOptions.report`. */
  report: (context: string, error: unknown, via: RabbitConnection) => void;
}

/**
 * Who is in a key-ordered group right now. Members announce themselves on the group's fanout
 * exchange (each through its own exclusive queue): `hello` on joining (answered by everyone's
 * `here`), `here` every `heartbeatMs`, `bye` on leaving. A member silent for 3.5 heartbeats is
 * dropped. Views may briefly differ between members; that only affects balance, never order,
 * because partition queues are single-active-consumer.
 *
 * Announcements go out on the publishing connection, so a resource alarm never blocks the
 * consuming one. While that connection is down or blocked nobody's heartbeats get through (an
 * alarm blocks every publisher), so silence is not held against peers until it is back.
 */
export class GroupMembership {
  readonly id = randomUUID();
  private readonly seen = new Map<string, number>();
  private channel: Channel | undefined;
  /** The open announcing channel on the publishing connection, if any. */
  private announcer: Channel | undefined;
  private openingAnnouncer = false;
  private muted = false;
  private readonly exchange: string;
  private readonly connection: RabbitConnection;
  private readonly publishing: RabbitConnection;
  private readonly topology: Topology;
  private readonly topic: string;
  private readonly group: string;
  private readonly heartbeatMs: number;
  private readonly onChange: () => void;
  private readonly report: GroupMembershipOptions['report'];

  constructor(options: GroupMembershipOptions) {
    this.connection = options.connection;
    this.publishing = options.publishing;
    this.topology = options.topology;
    this.topic = options.topic;
    this.group = options.group;
    this.heartbeatMs = options.heartbeatMs;
    this.onChange = options.onChange;
    this.report = options.report;
    this.exchange = names.membersExchange(this.topic, this.group);
  }

  /** Joins (again, after a reconnect): listens, then says hello. */
  async join(): Promise<void> {
    await this.topology.membersExchange(this.topic, this.group);
    const channel = await this.connection.channel();
    this.channel = channel;
    // The broker closed the channel (a lost connection closes it without an error).
    channel.on('error', (error: unknown) => {
      if (this.channel === channel)
        this.report(
          `group ${this.group} of ${this.topic}: the membership channel was closed; this member hears no other`,
          error,
          this.connection,
        );
    });
    const { queue } = await channel.assertQueue('', { exclusive: true, autoDelete: true, durable: false });
    await channel.bindQueue(queue, this.exchange, '');
    await channel.consume(
      queue,
      (message) => {
        if (message !== null) this.receive(message.content);
        else if (this.channel === channel)
          this.report(
            `group ${this.group} of ${this.topic}: the membership consumer was cancelled; this member hears no other`,
            new Error('basic.cancel from the broker: the membership queue was deleted'),
            this.connection,
          );
      },
      { noAck: true },
    );
    this.seen.clear();
    this.seen.set(this.id, Date.now());
    this.announce('hello');
  }

  /** Ids of live members, this one included, in the order every member sorts them. */
  members(): string[] {
    return [...this.seen.keys()].sort();
  }

  /** Says `here` and drops silent members; called every `heartbeatMs`. */
  beat(): void {
    const now = Date.now();
    this.seen.set(this.id, now);
    if (!this.publishing.connected || this.publishing.blocked) {
      this.muted = true;
      return;
    }
    if (this.muted) {
      // Back from an outage or alarm: everyone gets a fresh 3.5 heartbeats to be heard again.
      this.muted = false;
      for (const id of this.seen.keys()) this.seen.set(id, now);
    }
    this.announce('here');
    let changed = false;
    for (const [id, at] of this.seen) {
      if (now - at > this.heartbeatMs * 3.5) {
        this.seen.delete(id);
        changed = true;
      }
    }
    if (changed) this.onChange();
  }

  /** Says `bye` if it can right away (never waits on the publishing connection) and stops listening. */
  async leave(): Promise<void> {
    this.announce('bye');
    const announcer = this.announcer;
    this.announcer = undefined;
    const channel = this.channel;
    this.channel = undefined;
    if (announcer !== undefined) void announcer.close().catch(() => {});
    await channel?.close().catch(() => {});
  }

  private announce(type: Announcement['type']): void {
    if (this.channel === undefined) return; // not joined
    const announcer = this.announcer;
    if (announcer === undefined) {
      this.openAnnouncer();
      return; // the next heartbeat is heard instead
    }
    if (this.publishing.blocked) return; // it would only queue up in the socket
    try {
      announcer.publish(this.exchange, '', Buffer.from(JSON.stringify({ type, id: this.id })));
    } catch {
      // Closed under us (why is reported by its 'error' listener, or was a lost connection);
      // reopened on the next announcement.
      this.announcer = undefined;
    }
  }

  private openAnnouncer(): void {
    if (this.openingAnnouncer) return;
    this.openingAnnouncer = true;
    this.publishing.channel().then(
      (channel) => {
        this.openingAnnouncer = false;
        if (this.channel === undefined) {
          void channel.close().catch(() => {}); // left meanwhile
          return;
        }
        channel.on('close', () => {
          if (this.announcer === channel) this.announcer = undefined;
        });
        // The broker closed it, e.g. the members exchange is gone (404): reopened on the next
        // heartbeat, but nobody hears this member meanwhile.
        channel.on('error', (error: unknown) => {
          if (this.channel !== undefined)
            this.report(
              `group ${this.group} of ${this.topic}: announcing membership failed`,
              error,
              this.publishing,
            );
        });
        this.announcer = channel;
        this.announce('hello');
      },
      (error: unknown) => {
        this.openingAnnouncer = false; // tried again on the next heartbeat
        this.report(
          `group ${this.group} of ${this.topic}: opening the membership channel failed`,
          error,
          this.publishing,
        );
      },
    );
  }

  private receive(content: Buffer): void {
    let message: Announcement;
    try {
      message = JSON.parse(content.toString('utf8')) as Announcement;
    } catch {
      return;
    }
    if (typeof message?.id !== 'string' || message.id === this.id) return;
    if (message.type === 'bye') {
      if (this.seen.delete(message.id)) this.onChange();
      return;
    }
    const known = this.seen.has(message.id);
    this.seen.set(message.id, Date.now());
    if (message.type === 'hello') this.announce('here');
    if (!known) this.onChange();
  }
}
