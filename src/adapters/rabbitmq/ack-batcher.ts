import type { Channel, Message } from 'amqplib';
import { OffsetTracker } from '../../core/offset-tracker.js';

/**
 * Acknowledges deliveries of one channel, batching with `multiple` where that is safe: a
 * multiple ack covers every outstanding tag up to it, so it is only sent for a prefix of
 * deliveries that all finished. Deliveries finishing ahead of an unfinished one are acked one
 * by one, so a slow handler never holds back the acks (and prefetch credit) of others.
 * Deliveries never finished (dropped on close) stay unacked and return to the queue.
 */
export class AckBatcher {
  private readonly tracker: OffsetTracker;
  private finished: number[] = [];
  private scheduled = false;
  private dead = false;

  constructor(private readonly channel: Channel) {
    this.tracker = new OffsetTracker(1);
  }

  /** Every delivery of the channel must be registered, in order, handled or not. */
  delivered(tag: number): void {
    this.tracker.start(tag);
  }

  /** Acks `tag` (soon, possibly together with others). */
  ack(tag: number): void {
    this.tracker.finish(tag);
    this.finished.push(tag);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
  }

  /** Returns `tag` to the queue now. */
  requeue(tag: number): void {
    this.flush();
    this.tracker.finish(tag);
    this.send(() => this.channel.nack({ fields: { deliveryTag: tag } } as Message, false, true));
  }

  /** Stops sending: the channel is gone, and the broker requeued what was not acked. */
  kill(): void {
    this.dead = true;
    this.finished = [];
  }

  readonly flush = (): void => {
    this.scheduled = false;
    if (this.finished.length === 0) return;
    const prefixEnd = this.tracker.committable() - 1;
    let multipleTag = 0;
    for (const tag of this.finished) {
      if (tag <= prefixEnd) {
        if (tag > multipleTag) multipleTag = tag;
      } else {
        this.send(() => this.channel.ack({ fields: { deliveryTag: tag } } as Message, false));
      }
    }
    this.finished = [];
    // Every outstanding tag up to it finished: those acked one by one earlier are no longer
    // outstanding, and the rest of the prefix finished in this or an earlier flush.
    if (multipleTag > 0)
      this.send(() => this.channel.ack({ fields: { deliveryTag: multipleTag } } as Message, true));
  };

  private send(frame: () => void): void {
    if (this.dead) return;
    try {
      frame();
    } catch {
      this.dead = true; // channel closing: unacked deliveries go back to the queue
    }
  }
}
