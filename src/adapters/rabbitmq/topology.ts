import type { Channel } from 'amqplib';
import { isMqError, TimeoutError } from '../../core/errors.js';
import { settlesWithin } from '../../core/timers.js';
import { HASH_HEADER } from './amqp-wire.js';
import type { RabbitConnection } from './connection.js';
import { replyCode, toMqError } from './connection.js';
import { type DelayTarget, hopHeader, targetValue } from './delay-route.js';
import { names } from './names.js';
import type { ResolvedRabbitMqOptions } from './options.js';

/** Binding keys of a group: `#` (every message, tagged or not) or one per tag. */
export function bindingKeys(tags: ReadonlySet<string> | undefined): string[] {
  return tags === undefined ? ['#'] : [...tags];
}

/** Queue arguments fixed at first declaration (RabbitMQ refuses a redeclaration with others). */
export interface GroupQueueOptions {
  /** Exchange the broker dead-letters into when a quorum queue's delivery limit is hit. */
  deadLetterExchange: string | undefined;
}

/**
 * Idempotent declarations, each run once per connection (the cache is dropped on reconnect, so
 * everything is declared again after a broker restart, durable or not).
 */
export class Topology {
  private cache = new Map<string, Promise<void>>();
  /** Keys whose declaration completed on the current connection. */
  private ready = new Set<string>();
  private generation: number;
  private readonly holding = new Set<string>();

  /**
   * @param connection declarations (its generation decides when to declare again)
   * @param publishing the partition-count messages: publishing on `connection` would let a
   *   resource alarm block the connection consumers ack on
   */
  constructor(
    private readonly connection: RabbitConnection,
    private readonly publishing: RabbitConnection,
    private readonly options: ResolvedRabbitMqOptions,
  ) {
    this.generation = connection.generation;
  }

  /** Forgets what was declared, so the next use declares again (after a channel error). */
  forget(): void {
    this.cache = new Map();
    this.ready = new Set();
  }

  isStream(topic: string): boolean {
    return this.options.streams.has(topic);
  }

  /** True when `topic`'s exchange is known to exist on this connection: sends may go straight out. */
  topicReady(topic: string): boolean {
    return this.generation === this.connection.generation && this.ready.has(`topic\0${topic}`);
  }

  /**
   * True when the topic's exchange holds what no binding takes (its alternate exchange feeds
   * `mq.unrouted:<topic>`); false when it was declared without one, so such sends are refused.
   * Known once `topic(topic)` resolved.
   */
  holdsUnrouted(topic: string): boolean {
    return this.holding.has(topic);
  }

  /**
   * The topic exchange, plus the stream queue for stream topics. With `holdUnroutedMs`, the
   * exchange's alternate exchange routes a message no binding takes into the durable
   * `mq.unrouted:<topic>` queue (TTL `holdUnroutedMs`), so a send before any group subscribed
   * is stored, as on Kafka, instead of refused.
   */
  topic(topic: string): Promise<void> {
    return this.once(`topic\0${topic}`, `declare topic ${topic}`, async () => {
      await this.declareTopicExchange(topic);
      if (!this.isStream(topic)) return;
      await this.connection.withAdmin(`declare stream ${topic}`, async (ch) => {
        await ch.assertQueue(names.topicQueue(topic), {
          durable: true,
          arguments: { 'x-queue-type': 'stream' },
        });
        await ch.bindQueue(names.topicQueue(topic), names.topicExchange(topic), '#');
      });
    });
  }

  /** A dead-letter topic: its exchange plus a durable queue keeping every dead letter for operators. */
  deadLetterTopic(topic: string): Promise<void> {
    return this.once(`dlq\0${topic}`, `declare dead-letter topic ${topic}`, async () => {
      await this.declareTopicExchange(topic);
      await this.connection.withAdmin(`declare dead-letter queue ${topic}`, async (ch) => {
        await ch.assertQueue(names.topicQueue(topic), { durable: true, arguments: this.queueArguments() });
        await ch.bindQueue(names.topicQueue(topic), names.topicExchange(topic), '#');
      });
    });
  }

  /** A concurrent group's durable queue, bound to the topic exchange. */
  groupQueue(
    topic: string,
    group: string,
    tags: ReadonlySet<string> | undefined,
    options: GroupQueueOptions,
  ): Promise<void> {
    const queue = names.groupQueue(topic, group);
    return this.once(`group\0${queue}\0${bindingKeys(tags)}`, `declare queue ${queue}`, async (ch) => {
      await ch.assertQueue(queue, { durable: true, arguments: this.queueArguments(options) });
      for (const key of bindingKeys(tags)) await ch.bindQueue(queue, names.topicExchange(topic), key);
    });
  }

  /**
   * A key-ordered group: a consistent-hash exchange (hashing `mq-hash`) bound to the topic
   * exchange, feeding `partitions` single-active-consumer queues. Raising `partitions` adds
   * queues; keys that hash to a new queue move there (their order holds only from then on).
   */
  orderedGroup(
    topic: string,
    group: string,
    partitions: number,
    tags: ReadonlySet<string> | undefined,
    options: GroupQueueOptions,
  ): Promise<void> {
    const hash = names.hashExchange(topic, group);
    return this.once(
      `ordered\0${hash}\0${partitions}\0${bindingKeys(tags)}`,
      `declare partition queues of ${topic}:${group}`,
      async (ch) => {
        await ch.assertExchange(hash, 'x-consistent-hash', {
          durable: true,
          arguments: { 'hash-header': HASH_HEADER },
        });
        for (const key of bindingKeys(tags)) await ch.bindExchange(hash, names.topicExchange(topic), key);
        const args = { ...this.queueArguments(options), 'x-single-active-consumer': true };
        for (let p = 0; p < partitions; p++) {
          const queue = names.partitionQueue(topic, group, p);
          await ch.assertQueue(queue, { durable: true, arguments: args });
          await ch.bindQueue(queue, hash, '1'); // equal weights
        }
      },
    );
  }

  /** A broadcasting subscription's queue: exclusive to this connection, gone with the subscription. */
  async broadcastQueue(topic: string, group: string, tags: ReadonlySet<string> | undefined): Promise<void> {
    const queue = names.groupQueue(topic, group);
    await this.connection.withAdmin(`declare queue ${queue}`, async (ch) => {
      await ch.assertQueue(queue, { exclusive: true, autoDelete: true, durable: false });
      for (const key of bindingKeys(tags)) await ch.bindQueue(queue, names.topicExchange(topic), key);
    });
  }

  async deleteQueue(queue: string): Promise<void> {
    await this.connection.withAdmin(`delete queue ${queue}`, (ch) => ch.deleteQueue(queue)).catch(() => {});
  }

  /** The fanout exchange members of a key-ordered group announce themselves on. */
  membersExchange(topic: string, group: string): Promise<void> {
    const exchange = names.membersExchange(topic, group);
    return this.once(`members\0${exchange}`, `declare ${exchange}`, async (ch) => {
      await ch.assertExchange(exchange, 'fanout', { durable: true });
    });
  }

  /**
   * Tier queues and bindings that carry a delayed copy through `tiers` to `target`. Each tier
   * is a fanout exchange into a queue with that TTL, dead-lettering into a headers exchange
   * that routes on the copy's `mq-delay-<ms>` header to the next tier or the target.
   */
  async delayRoute(tiers: readonly number[], target: DelayTarget): Promise<void> {
    const steps: Promise<void>[] = [];
    tiers.forEach((ms, i) => {
      steps.push(this.tier(ms));
      const next = tiers[i + 1];
      const value = next === undefined ? targetValue(target) : `tier:${next}`;
      const args = { 'x-match': 'all', [hopHeader(ms)]: value };
      steps.push(
        this.once(`hop\0${ms}\0${value}`, `bind delay tier ${ms} ms`, async (ch) => {
          if (next !== undefined) {
            await this.tierOn(ch, next);
            await ch.bindQueue(names.delayTier(next), names.delayNext(ms), '', args);
          } else if (target.kind === 'topic') {
            await ch.bindExchange(target.exchange, names.delayNext(ms), '', args);
          } else {
            await ch.bindQueue(target.queue, names.delayNext(ms), '', args);
          }
        }),
      );
    });
    await Promise.all(steps);
  }

  /**
   * Declares a topic exchange as `holdUnroutedMs` asks, then the holding queue its alternate
   * exchange names. RabbitMQ refuses to redeclare an exchange with another alternate exchange
   * (406): one declared otherwise (by an earlier version, or with the other setting) is kept as
   * it is. On a channel of its own: a 406 closes the channel, and the shared admin channel may
   * be carrying other declarations at the time.
   */
  private async declareTopicExchange(topic: string): Promise<void> {
    const exchange = names.topicExchange(topic);
    const ttl = this.options.holdUnroutedMs;
    const unrouted = names.unrouted(topic);
    const channel = await this.connection.channel();
    try {
      await channel.assertExchange(exchange, 'topic', {
        durable: true,
        arguments: ttl > 0 ? { 'alternate-exchange': unrouted } : {},
      });
    } catch (error) {
      if (replyCode(error) !== 406) throw toMqError(error, `declare topic ${topic}`);
      await this.connection.withAdmin(`check topic ${topic}`, (ch) => ch.checkExchange(exchange));
      // The holding queue is only ever made after its exchange took the alternate exchange.
      if (await this.queueMissing(unrouted)) this.holding.delete(topic);
      else this.holding.add(topic);
      return;
    } finally {
      await channel.close().catch(() => {});
    }
    if (ttl === 0) {
      this.holding.delete(topic);
      return;
    }
    await this.connection.withAdmin(`declare holding queue of ${topic}`, async (ch) => {
      await ch.assertExchange(unrouted, 'fanout', { durable: true });
      await ch.assertQueue(unrouted, {
        durable: true,
        arguments: { ...this.queueArguments(), 'x-message-ttl': ttl },
      });
      await ch.bindQueue(unrouted, unrouted, '');
    });
    this.holding.add(topic);
  }

  /** True when `queue` does not exist (a passive declare answers 404). */
  async queueMissing(queue: string): Promise<boolean> {
    const channel = await this.connection.channel();
    try {
      await channel.checkQueue(queue);
      return false;
    } catch (error) {
      if (replyCode(error) === 404) return true;
      throw toMqError(error, `check queue ${queue}`);
    } finally {
      await channel.close().catch(() => {});
    }
  }

  private tier(ms: number): Promise<void> {
    return this.once(`tier\0${ms}`, `declare delay tier ${ms} ms`, (ch) => this.tierOn(ch, ms));
  }

  private async tierOn(ch: Channel, ms: number): Promise<void> {
    const name = names.delayTier(ms);
    await ch.assertExchange(names.delayNext(ms), 'headers', { durable: true });
    await ch.assertExchange(name, 'fanout', { durable: true });
    await ch.assertQueue(name, {
      durable: true,
      arguments: { 'x-message-ttl': ms, 'x-dead-letter-exchange': names.delayNext(ms) },
    });
    await ch.bindQueue(name, name, '');
  }

  /** The topic's partition count: the message count of its metadata queue (0: never set). */
  async partitions(topic: string): Promise<number> {
    const meta = names.partitionsMeta(topic);
    const ok = await this.connection.withAdmin(`read partitions of ${topic}`, (ch) =>
      ch.assertQueue(meta, { durable: true }),
    );
    return ok.messageCount > 0 ? ok.messageCount : this.options.partitions;
  }

  /**
   * Raises the topic's partition count to at least `partitions`. The read-then-add runs under
   * an exclusive queue used as a lock (released with the connection if this process dies),
   * so instances starting together do not add their counts up.
   */
  async raisePartitions(topic: string, partitions: number, timeoutMs = 30_000): Promise<void> {
    const lock = names.partitionsLock(topic);
    const meta = names.partitionsMeta(topic);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const channel = await this.connection.channel();
      try {
        await channel.assertQueue(lock, { exclusive: true, autoDelete: true, durable: false });
      } catch (error) {
        if (replyCode(error) !== 405) throw toMqError(error, `lock partition count of ${topic}`);
        if (Date.now() > deadline)
          throw new TimeoutError(`partition count of ${topic} stayed locked for ${timeoutMs} ms`);
        await new Promise((resolve) => setTimeout(resolve, 10 + Math.random() * 40));
        continue; // the failed declare closed the channel
      }
      try {
        const { messageCount } = await channel.assertQueue(meta, { durable: true });
        if (messageCount < partitions) {
          const confirm = await this.publishing.confirmChannel();
          try {
            for (let i = messageCount; i < partitions; i++) {
              confirm.sendToQueue(meta, Buffer.from(String(i)), { persistent: true });
            }
            const confirmed = confirm.waitForConfirms();
            confirmed.catch(() => {}); // rejected after a timeout below: nobody else listens
            if (!(await settlesWithin(confirmed, Math.max(0, deadline - Date.now())))) {
              throw new TimeoutError(
                `RabbitMQ did not confirm the partition count of ${topic} within ${timeoutMs} ms${this.publishing.blocked ? ' (it blocks publishing: memory or disk alarm)' : ''}`,
              );
            }
            await confirmed;
          } finally {
            await confirm.close().catch(() => {});
          }
        }
        await channel.deleteQueue(lock);
      } catch (error) {
        // The lock is exclusive to this connection, which lives on: release it for the others.
        await this.connection.withAdmin(`unlock ${topic}`, (ch) => ch.deleteQueue(lock)).catch(() => {});
        throw isMqError(error) ? error : toMqError(error, `raise partition count of ${topic}`);
      } finally {
        await channel.close().catch(() => {});
      }
      return;
    }
  }

  private queueArguments(options?: GroupQueueOptions): Record<string, unknown> {
    if (this.options.queueType !== 'quorum') return {};
    const args: Record<string, unknown> = {
      'x-queue-type': 'quorum',
      'x-delivery-limit': this.options.deliveryLimit,
    };
    if (options?.deadLetterExchange !== undefined)
      args['x-dead-letter-exchange'] = options.deadLetterExchange;
    return args;
  }

  private once(key: string, what: string, declare: (channel: Channel) => Promise<void>): Promise<void> {
    if (this.generation !== this.connection.generation) {
      this.generation = this.connection.generation;
      this.forget();
    }
    let done = this.cache.get(key);
    if (done === undefined) {
      const { cache, ready } = this;
      const declared = this.connection.withAdmin(what, declare);
      declared.then(
        () => ready.add(key),
        () => {
          if (cache.get(key) === declared) cache.delete(key);
        },
      );
      cache.set(key, declared);
      done = declared;
    }
    return done;
  }
}
