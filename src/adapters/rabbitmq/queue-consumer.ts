import type { Channel, ConsumeMessage } from 'amqplib';
import { AckBatcher } from './ack-batcher.js';
import type { RabbitConnection } from './connection.js';

export interface QueueConsumerOptions {
  connection: RabbitConnection;
  queue: string;
  /** Partition queue index, for partitioned groups. */
  partition: number | undefined;
  prefetch: number;
  onDelivery: (consumer: QueueConsumer, message: ConsumeMessage) => void;
  /** The channel closed without `close()`: connection lost, queue deleted, or a channel error. */
  onLost: (consumer: QueueConsumer) => void;
  /** `basic.consume` arguments, e.g. a stream offset. */
  consumeArguments?: Record<string, unknown>;
}

/**
 * One consumer on one queue, on its own channel (so closing it requeues exactly its unacked
 * deliveries), with bounded prefetch and manual acks.
 */
export class QueueConsumer {
  /** Set by `stop()` or a lost channel: deliveries are no longer handed out, retry waits end. */
  readonly stopping = new AbortController();
  /** The channel is gone; acks can no longer be sent and the broker requeued what was unacked. */
  dead = false;
  /** Handlers running for this consumer (retry waits included). */
  running = 0;
  private channel: Channel | undefined;
  private batcher: AckBatcher | undefined;
  private consumerTag: string | undefined;
  private idleWaiters: (() => void)[] = [];
  readonly queue: string;
  /** Partition queue index, for partitioned groups. */
  readonly partition: number | undefined;
  private readonly connection: RabbitConnection;
  private readonly prefetch: number;
  private readonly onDelivery: QueueConsumerOptions['onDelivery'];
  private readonly onLost: QueueConsumerOptions['onLost'];
  private readonly consumeArguments: Record<string, unknown> | undefined;

  constructor(options: QueueConsumerOptions) {
    this.connection = options.connection;
    this.queue = options.queue;
    this.partition = options.partition;
    this.prefetch = options.prefetch;
    this.onDelivery = options.onDelivery;
    this.onLost = options.onLost;
    this.consumeArguments = options.consumeArguments;
  }

  get stopped(): boolean {
    return this.stopping.signal.aborted;
  }

  /** Resolves once the broker confirmed the consumer (basic.consume-ok). */
  async start(): Promise<void> {
    const channel = await this.connection.channel();
    this.channel = channel;
    channel.on('close', () => this.lost());
    if (this.dead) {
      // Closed while the channel was opening (e.g. across a reconnect): register nothing.
      await channel.close().catch(() => {});
      return;
    }
    await channel.prefetch(this.prefetch);
    const batcher = new AckBatcher(channel);
    this.batcher = batcher;
    const ok = await channel.consume(
      this.queue,
      (message) => {
        if (message === null) {
          this.lost(); // cancelled by the broker: the queue was deleted
          return;
        }
        batcher.delivered(message.fields.deliveryTag);
        if (!this.stopped) this.onDelivery(this, message);
      },
      { noAck: false, arguments: this.consumeArguments },
    );
    this.consumerTag = ok.consumerTag;
    if (this.dead) await channel.close().catch(() => {});
  }

  /** Changes how many deliveries the broker hands this consumer ahead of its acks. */
  setPrefetch(prefetch: number): void {
    if (this.dead || this.channel === undefined) return;
    // A channel closing meanwhile is reported by its 'close' event, not here.
    this.channel.prefetch(prefetch).catch(() => {});
  }

  ack(tag: number): void {
    this.batcher?.ack(tag);
  }

  requeue(tag: number): void {
    this.batcher?.requeue(tag);
  }

  /** Stops handing out deliveries; they stay unacked until `close()` returns them to the queue. */
  stop(): void {
    this.stopping.abort();
  }

  /** basic.cancel: the broker sends nothing more (and may give the queue to another consumer). */
  async cancel(): Promise<void> {
    this.stop();
    if (this.dead || this.channel === undefined || this.consumerTag === undefined) return;
    await this.channel.cancel(this.consumerTag).catch(() => {});
  }

  /** Resolves when no handler of this consumer runs, or after `timeoutMs`; true if idle. */
  whenIdle(timeoutMs: number): Promise<boolean> {
    if (this.running === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.idleWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  finished(): void {
    this.running--;
    if (this.running === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** Sends pending acks, then closes the channel: every delivery not acked returns to the queue. */
  async close(): Promise<void> {
    this.stop();
    const channel = this.channel;
    this.batcher?.flush();
    this.dead = true;
    if (channel !== undefined) await channel.close().catch(() => {});
  }

  private lost(): void {
    if (this.dead) return;
    this.dead = true;
    this.batcher?.kill();
    this.stopping.abort();
    this.onLost(this);
  }
}
