import { SimpleConsumer } from 'rocketmq-client-nodejs';
import type { Claim, ConsumerEngine, ConsumerTransport } from '../../core/consumer-engine.js';
import type { ReceivedRecord } from '../../core/dispatch.js';
import type { Headers } from '../../core/message.js';
import type { ResolvedSubscribeOptions } from '../../core/options.js';
import { H } from '../../core/wire.js';
import type { RocketMqContext } from './context.js';
import { mqkitName } from './names.js';
import { decodeProperties } from './properties.js';

type ClientView = Awaited<ReturnType<SimpleConsumer['receive']>>[number];

/**
 * What the adapter reads of a received MessageView, declared here so that mqkit's published
 * declarations do not need the optional peer.
 */
export interface View {
  readonly messageId: string;
  readonly topic: string;
  readonly body: Buffer;
  readonly tag?: string;
  readonly keys: string[];
  readonly messageGroup?: string;
  readonly properties: Map<string, string>;
  readonly offset?: number;
  readonly bornTimestamp?: Date;
  deliveryAttempt?: number;
}

/** The proxy's `maxInvisibleTimeMills` (12 h): a longer invisible duration is refused. */
export const MAX_INVISIBLE_MS = 43_200_000;

/**
 * A delivered record's hold on its message: the renewal timer and the chain of invisible-time
 * changes and the final ack or release. One chain per record, because the client replaces the
 * view's receipt handle only once a change returns: an ack sent meanwhile carries the old handle.
 */
interface Hold {
  chain: Promise<void>;
  timer: NodeJS.Timeout | undefined;
  done: boolean;
}

/** A received message and what acknowledging it needs. */
export interface RocketMqRecord extends ReceivedRecord {
  view: View;
  claim: Claim;
}

/** Property marking a message whose body is empty (RocketMQ refuses empty bodies: one byte is sent). */
export const EMPTY_BODY = 'mq-empty-body';

/** How old the topic's queue count may be before a FIFO group reads it again (see `everyQueueLocked`). */
const QUEUE_COUNT_MAX_AGE_MS = 10_000;

/** Properties RocketMQ adds that are not mqkit headers. */
export const SYSTEM_PROPERTY =
  /^(__|UNIQ_KEY$|TRAN_MSG$|TRANSACTION_|PGROUP$|MIN_OFFSET$|MAX_OFFSET$|CONSUME_START_TIME$|REAL_|DELAY$|TIMER_)/;

/**
 * A SimpleConsumer that also reports each received message's queue: the client's MessageView
 * does not expose it, and mqkit hands out queues as partitions (with their own order lanes).
 */
class QueueAwareConsumer extends SimpleConsumer {
  readonly queueOf = new Map<string, number>();
  constructor(options: ConstructorParameters<typeof SimpleConsumer>[0]) {
    super(options);
    // biome-ignore lint/suspicious/noExplicitAny: the client's rpcClientManager is protected in TypeScript only
    const manager = (this as any).rpcClientManager;
    const receive = manager.receiveMessage.bind(manager);
    manager.receiveMessage = async (...args: unknown[]) => {
      const responses = await receive(...args);
      for (const r of responses) {
        const props = r.getMessage?.()?.getSystemProperties?.();
        if (props !== undefined) this.queueOf.set(props.getMessageId(), props.getQueueId());
      }
      return responses;
    };
  }
}

/**
 * One subscription on RocketMQ 5 (the gRPC proxy's pop consumption, through SimpleConsumer):
 * a receive loop long-polls the proxy for up to `prefetch` messages, each queue a claim. The
 * broker filters tags. A message's invisibility (how long before the broker hands it out again)
 * is kept beyond in-process retries; acking makes it consumed. Order 'key' and 'partition' use a
 * FIFO consumer group: the broker hands out a queue's next messages only after the previous ones
 * were acknowledged, so per-key order holds across members; while this member holds messages of
 * every queue, it waits for its own acks before it asks again (see `everyQueueLocked`).
 */
export class RocketMqTransport implements ConsumerTransport<RocketMqRecord> {
  private consumer: QueueAwareConsumer | undefined;
  private engine: ConsumerEngine<RocketMqRecord> | undefined;
  private stopping = false;
  private loop: Promise<void> | undefined;
  private readonly nativeTopic: string;
  private readonly nativeGroup: string;
  private readonly prefetch: number;
  private wake: (() => void) | undefined;
  /** FIFO group (order 'key' or 'partition'): the broker locks a queue while this member holds its messages. */
  private readonly orderly: boolean;
  /** The topic's queue count, read when the admin client is available (see `everyQueueLocked`). */
  private queueCount: number | undefined;
  private queueCountReadAt = 0;
  /** FIFO group: per queue id, messages received and not yet acknowledged (or released) at the broker. */
  private readonly unackedPerQueue = new Map<number, number>();
  /** Releases and acks in flight: a close waits for them before the client shuts down. */
  private readonly pending = new Set<Promise<unknown>>();
  /** Records delivered and not yet settled, whose invisible time is renewed while held. */
  private readonly held = new Map<RocketMqRecord, Hold>();
  private renewalReported = false;
  private queueUnknownReported = false;

  constructor(
    private readonly context: RocketMqContext,
    private readonly options: ResolvedSubscribeOptions,
    nativeTopic: string,
    nativeGroup: string,
  ) {
    this.nativeTopic = nativeTopic;
    this.nativeGroup = nativeGroup;
    this.prefetch = Math.max(64, options.concurrency * 4 * (options.batch?.maxSize ?? 1));
    this.orderly = options.order !== 'concurrent';
  }

  /**
   * How long a received message stays hidden from other members. It is renewed every half of it
   * from delivery until settled (waiting in prefetch, running, waiting for a retry), so it only
   * bounds how long a message of a dead member stays hidden.
   */
  private get invisibleMs(): number {
    const given = this.context.options.invisibleMs;
    if (given !== undefined) return given;
    const r = this.options.retry;
    return Math.min(MAX_INVISIBLE_MS, Math.max(30_000, this.options.closeTimeoutMs * 2, r.maxMs * 2));
  }

  async start(engine: ConsumerEngine<RocketMqRecord>): Promise<void> {
    this.engine = engine;
    const { admin } = this.context;
    if (admin.available) {
      await admin.ensureExists(this.nativeTopic);
      await admin.ensureGroup(this.nativeGroup, this.orderly);
      await this.placeStart();
      if (this.orderly) await this.readQueueCount();
    }
    const tags = this.options.tags;
    const expression = tags === undefined ? '*' : [...tags].join('||');
    this.consumer = new QueueAwareConsumer({
      ...this.context.clientOptions,
      consumerGroup: this.nativeGroup,
      subscriptions: new Map([[this.nativeTopic, expression]]),
      awaitDuration: this.context.options.awaitMs,
    });
    try {
      await this.consumer.startup();
    } catch (error) {
      throw this.context.error(error, `subscribing to ${this.options.topic} (group ${this.options.group})`);
    }
    this.loop = this.receiveLoop();
  }

  /**
   * Sets the group's position on queues where it has none, per `startFrom`. Without this, a new
   * group's first pop starts at the queue's first message while that is still in memory, and
   * at its last otherwise.
   */
  private async placeStart(): Promise<void> {
    const { admin } = this.context;
    const start = this.options.startFrom;
    for (const ref of await admin.queues(this.nativeTopic)) {
      if ((await admin.consumerOffset(ref, this.nativeTopic, this.nativeGroup)) !== undefined) continue;
      const offset =
        start === 'earliest'
          ? await admin.minOffset(ref, this.nativeTopic)
          : start === 'latest'
            ? await admin.maxOffset(ref, this.nativeTopic)
            : await admin.offsetForTimestamp(ref, this.nativeTopic, start.timestamp);
      await admin.commitOffset(ref, this.nativeTopic, this.nativeGroup, offset);
    }
  }

  private async receiveLoop(): Promise<void> {
    const engine = this.engine as ConsumerEngine<RocketMqRecord>;
    const consumer = this.consumer as QueueAwareConsumer;
    let failures = 0;
    while (!this.stopping) {
      const room = this.prefetch - engine.inFlight;
      if (room <= 0 || this.everyQueueLocked()) {
        await new Promise<void>((resolve) => {
          this.wake = resolve;
        });
        continue;
      }
      let views: View[];
      try {
        views = await consumer.receive(Math.min(32, room), this.invisibleMs);
        failures = 0;
      } catch (error) {
        if (this.stopping) break;
        // An empty long poll ends in a "no new message" status: nothing to report.
        if ((error as { code?: number }).code === 40_401 || /no new message/i.test(String(error))) continue;
        if (++failures === 1 || failures % 20 === 0)
          engine.report(
            `receiving from ${this.options.topic} failed (attempt ${failures})`,
            this.context.error(error, 'receive'),
          );
        await new Promise((resolve) => setTimeout(resolve, Math.min(5000, 100 * 2 ** Math.min(failures, 6))));
        continue;
      }
      for (const view of views) {
        if (this.stopping) {
          this.release(view);
          continue;
        }
        let queueId = consumer.queueOf.get(view.messageId);
        consumer.queueOf.delete(view.messageId);
        if (queueId === undefined) {
          // The client's internals moved (another version): every message counts as queue 0,
          // one order lane per key still, but one claim for all queues.
          queueId = 0;
          if (!this.queueUnknownReported) {
            this.queueUnknownReported = true;
            engine.report(
              `the queue of a received message cannot be read (rocketmq-client-nodejs version?): all count as queue 0; reported once`,
              new Error('no queue id in the receive response'),
            );
          }
        }
        if (this.orderly) this.unackedPerQueue.set(queueId, (this.unackedPerQueue.get(queueId) ?? 0) + 1);
        const claim = engine.assign(`q${queueId}`, queueId);
        const record = this.record(view, queueId, claim);
        this.hold(record);
        engine.deliver(claim, record);
      }
    }
  }

  private record(view: View, queueId: number, claim: Claim): RocketMqRecord {
    const headers: Headers = {};
    for (const [name, value] of decodeProperties(view.properties))
      if (!SYSTEM_PROPERTY.test(name)) headers[name] = value;
    if (headers[H.id] === undefined) headers[H.id] = view.messageId;
    if (view.tag !== undefined && view.tag !== '' && headers[H.tag] === undefined) headers[H.tag] = view.tag;
    const empty = headers[EMPTY_BODY] === '1';
    delete headers[EMPTY_BODY];
    // A plain FIFO producer's message group is its order key (mqkit's travels in mq-key: the
    // group may be a hash of it). The client gives '' for no group.
    const key = headers[H.key] ?? (view.messageGroup || undefined) ?? view.keys[0];
    delete headers[H.key];
    const stamp = headers[H.timestamp];
    return {
      view,
      claim,
      topic: mqkitName(view.topic),
      payload: empty ? new Uint8Array(0) : view.body,
      headers,
      key,
      timestamp: stamp !== undefined ? Number(stamp) : (view.bornTimestamp?.getTime() ?? Date.now()),
      partition: queueId,
      offset: view.offset === undefined ? undefined : String(view.offset),
      attempt: view.deliveryAttempt ?? 1,
    };
  }

  /** Renews the record's invisible time every half of it until it is settled. */
  private hold(record: RocketMqRecord): void {
    const hold: Hold = { chain: Promise.resolve(), timer: undefined, done: false };
    this.held.set(record, hold);
    this.schedule(record, hold);
  }

  private schedule(record: RocketMqRecord, hold: Hold): void {
    if (hold.timer !== undefined) clearTimeout(hold.timer);
    hold.timer = setTimeout(() => {
      hold.timer = undefined;
      this.renew(record, hold);
    }, this.invisibleMs / 2);
    hold.timer.unref();
  }

  private renew(record: RocketMqRecord, hold: Hold): void {
    const consumer = this.consumer;
    if (hold.done || consumer === undefined) return;
    hold.chain = hold.chain
      .then(async () => {
        if (hold.done) return;
        await consumer.changeInvisibleDuration(record.view as ClientView, this.invisibleMs);
      })
      .catch((error: unknown) => {
        if (this.renewalReported) return;
        this.renewalReported = true;
        this.engine?.report(
          'renewing a held message failed (it may be delivered again to another member); reported once',
          this.context.error(error, 'changeInvisibleDuration'),
        );
      });
    this.schedule(record, hold);
  }

  settle(record: RocketMqRecord, settlement: 'ack' | 'requeue'): void {
    const consumer = this.consumer;
    const hold = this.held.get(record);
    this.held.delete(record);
    if (hold !== undefined) {
      hold.done = true;
      if (hold.timer !== undefined) clearTimeout(hold.timer);
    }
    // After any renewal in flight: it replaces the receipt handle the ack or release needs.
    const before = hold?.chain ?? Promise.resolve();
    if (consumer !== undefined) {
      const settled =
        settlement === 'ack'
          ? before
              .then(() => consumer.ack(record.view as ClientView))
              .catch((error: unknown) => {
                this.engine?.report(
                  'acknowledging a message failed (it will be delivered again)',
                  this.context.error(error, 'ack'),
                );
              })
          : before.then(() => this.release(record.view));
      this.track(settled);
      if (this.orderly) void settled.then(() => this.unlocked(record.partition as number));
    }
    // Poll again once half of the prefetch is free rather than after every settle: one poll
    // then brings a full batch instead of one or two messages.
    if (this.wake !== undefined && (this.engine?.inFlight ?? 0) <= this.prefetch >> 1) {
      const wake = this.wake;
      this.wake = undefined;
      wake();
    }
  }

  /**
   * FIFO group: true when this member holds unacknowledged messages of every queue of the topic.
   * The broker then answers a receive only once one of those queues is unlocked, and it checks
   * a parked receive only every 100 ms or so, not on the ack; waiting for our own acks instead
   * and then asking made a one-queue ordered topic about 4.5 times faster (`mqkit bench
   * --workload order-keys`). False while the queue count is unknown (no admin client), or
   * when queue ids repeat across brokers so that the held ids never reach the count: then a
   * receive goes out as soon as there is room, as for a normal group.
   */
  private everyQueueLocked(): boolean {
    if (!this.orderly || this.queueCount === undefined || this.unackedPerQueue.size === 0) return false;
    if (this.unackedPerQueue.size < this.queueCount) return false;
    // Queues may have been added since (ensureTopic raises the count): look again now and then.
    if (Date.now() - this.queueCountReadAt > QUEUE_COUNT_MAX_AGE_MS) void this.readQueueCount();
    return true;
  }

  private async readQueueCount(): Promise<void> {
    this.queueCountReadAt = Date.now();
    try {
      // No route (a name server that restarted and has not heard from the brokers yet, a topic
      // deleted) reads as no queues: count unknown then, rather than "every queue locked" with
      // none held, which no ack would ever end.
      const count = (await this.context.admin.queues(this.nativeTopic)).length;
      this.queueCount = count > 0 ? count : undefined;
    } catch (error) {
      if (!this.stopping) this.engine?.report(`reading the queues of ${this.options.topic} failed`, error);
    }
    this.wake?.();
  }

  /** A message of queue `queueId` is acknowledged or released at the broker. */
  private unlocked(queueId: number): void {
    const left = (this.unackedPerQueue.get(queueId) ?? 1) - 1;
    if (left > 0) {
      this.unackedPerQueue.set(queueId, left);
      return;
    }
    this.unackedPerQueue.delete(queueId);
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  /** Makes a message visible again at once (it is delivered again). Best effort. */
  private release(view: View): Promise<void> {
    const consumer = this.consumer;
    if (consumer === undefined) return Promise.resolve();
    const p = consumer.changeInvisibleDuration(view as ClientView, 1000).catch(() => {});
    this.track(p);
    return p;
  }

  private track(p: Promise<unknown>): void {
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  retrying(record: RocketMqRecord): void {
    // Renews now (the timer keeps renewing while the retry waits and runs).
    const hold = this.held.get(record);
    if (hold !== undefined) this.renew(record, hold);
  }

  async publishDeadLetter(record: RocketMqRecord, topic: string, headers: Headers): Promise<void> {
    await this.context.publishRaw({
      topic,
      id: headers[H.id] ?? record.view.messageId,
      key: record.key,
      tag: undefined,
      headers,
      payload: record.payload,
      delayMs: 0,
    });
  }

  stopDelivering(): void {
    this.stopping = true;
    this.wake?.();
  }

  async close(timeLeftMs: number): Promise<void> {
    this.stopping = true;
    this.wake?.();
    const consumer = this.consumer;
    // The loop may sit in a long poll: wait for it (at most a poll), so that the messages it
    // brings are released before the client shuts down rather than hidden until they time out.
    const pollMs = this.context.options.awaitMs + this.context.options.requestTimeoutMs;
    await Promise.race([this.loop, new Promise((r) => setTimeout(r, Math.max(timeLeftMs, pollMs)).unref())]);
    // A release that does not reach the broker leaves its message hidden for the whole
    // invisible duration: let them (and acks) finish first.
    await Promise.allSettled([...this.pending]);
    // Records never settled (a drain that timed out): stop renewing, they become visible again.
    for (const hold of this.held.values()) {
      hold.done = true;
      if (hold.timer !== undefined) clearTimeout(hold.timer);
    }
    this.held.clear();
    await consumer?.shutdown().catch(() => {});
    // A broadcast instance's group is its own and ends with it: leave no group behind.
    if (this.options.mode === 'broadcasting' && this.context.admin.available)
      await this.context.admin.deleteGroup(this.nativeGroup).catch((error: unknown) => {
        this.engine?.report('deleting the broadcast group failed', error);
      });
  }
}
