import { randomUUID } from 'node:crypto';
import type { Channel } from 'amqplib';
import type { RabbitConnection } from './connection.js';
import { names } from './names.js';
import type { Topology } from './topology.js';

interface Announcement {
  type: 'hello' | 'here' | 'bye';
  id: string;
}

/**
 * Who is in a key-ordered group right now. Members announce themselves on the group's fanout
 * exchange (each through its own exclusive queue): `hello` on joining (answered by everyone's
 * `here`), `here` every `heartbeatMs`, `bye` on leaving. A member silent for 3.5 heartbeats is
 * dropped. Views may briefly differ between members; that only affects balance, never order,
 * because partition queues are single-active-consumer.
 */
export class GroupMembership {
  readonly id = randomUUID();
  private readonly seen = new Map<string, number>();
  private channel: Channel | undefined;
  /** Announcements go out on the publishing connection, so a resource alarm never blocks the consuming one. */
  private announcer: Promise<Channel> | undefined;
  private readonly exchange: string;

  constructor(
    private readonly connection: RabbitConnection,
    private readonly publishing: RabbitConnection,
    private readonly topology: Topology,
    private readonly topic: string,
    private readonly group: string,
    private readonly heartbeatMs: number,
    private readonly onChange: () => void,
  ) {
    this.exchange = names.membersExchange(topic, group);
  }

  /** Joins (again, after a reconnect): listens, then says hello. */
  async join(): Promise<void> {
    await this.topology.membersExchange(this.topic, this.group);
    const channel = await this.connection.channel();
    this.channel = channel;
    const { queue } = await channel.assertQueue('', { exclusive: true, autoDelete: true, durable: false });
    await channel.bindQueue(queue, this.exchange, '');
    await channel.consume(
      queue,
      (message) => {
        if (message !== null) this.receive(message.content);
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

  async leave(): Promise<void> {
    const channel = this.channel;
    this.channel = undefined;
    const announcer = this.announcer;
    this.announcer = undefined;
    await announcer
      ?.then((a) => {
        a.publish(this.exchange, '', this.announcement('bye'));
        return a.close();
      })
      .catch(() => {});
    await channel?.close().catch(() => {});
  }

  private announcement(type: Announcement['type']): Buffer {
    return Buffer.from(JSON.stringify({ type, id: this.id }));
  }

  private announce(type: Announcement['type']): void {
    if (this.channel === undefined) return; // not joined
    this.announcer ??= this.openAnnouncer();
    this.announcer.then((a) => a.publish(this.exchange, '', this.announcement(type))).catch(() => {}); // channel gone: openAnnouncer forgot it, the next beat opens another
  }

  private openAnnouncer(): Promise<Channel> {
    const opening: Promise<Channel> = this.publishing.channel().then((channel) => {
      channel.on('close', () => {
        if (this.announcer === opening) this.announcer = undefined;
      });
      return channel;
    });
    opening.catch(() => {
      if (this.announcer === opening) this.announcer = undefined;
    });
    return opening;
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
