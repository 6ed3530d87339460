import type { Admin, Backlog, Broker, Delivery } from '../../src/index.js';

/**
 * What a backlog test counts itself, to check the reported backlog against: messages whose
 * send started and resolved, messages handled (once per id), the group's committed positions
 * from the broker's `committed` events, and per-key order violations.
 */
export class Tally {
  sendStarted = 0;
  sendDone = 0;
  readonly handledIds = new Set<string>();
  duplicates = 0;
  violations = 0;
  private readonly lastSeq = new Map<string, number>();
  private readonly committedBy = new Map<number, number>();

  constructor(broker: Broker, topic: string, group: string) {
    broker.on('committed', (e) => {
      if (e.topic === topic && e.group === group) {
        this.committedBy.set(e.partition, Math.max(this.committedBy.get(e.partition) ?? 0, Number(e.offset)));
      }
    });
  }

  get handled(): number {
    return this.handledIds.size;
  }

  /** Messages below the committed positions seen so far (the topic is new: offsets start at 0). */
  get committed(): number {
    let sum = 0;
    for (const offset of this.committedBy.values()) sum += offset;
    return sum;
  }

  /** Records a handled delivery of body `{ seq }` with a key; checks that each key's seq goes up by one. */
  handle(d: Delivery<{ seq: number }>): void {
    if (this.handledIds.has(d.id)) {
      this.duplicates++;
      return;
    }
    const key = d.key as string;
    if (d.body.seq !== (this.lastSeq.get(key) ?? -1) + 1) this.violations++;
    this.lastSeq.set(key, d.body.seq);
    this.handledIds.add(d.id);
  }
}

/** One sample's reported total and the bounds the test's own counts allow for it. */
export interface CheckedSample {
  reported: number;
  low: number;
  high: number;
}

/**
 * The broker's Admin, with each `backlog` call checked against `tally`, within each broker's
 * stated sampling error (see `BacklogMonitor`):
 * - every broker: at least "sent (resolved) before the call minus handled after it", except
 *   RabbitMQ, which does not count the up to `heldMax` deliveries its consumers hold;
 * - memory and Kafka (offsets): at most "sent (started) after minus committed before" (what was
 *   handled but not committed yet is still counted);
 * - RabbitMQ: at most "sent (started) after minus handled before" (a handled message is acked
 *   or about to be, never ready again without a failure).
 */
export function checkedAdmin(
  broker: Broker,
  tally: Tally,
  samples: CheckedSample[],
  heldMax: number,
): Admin & { outside: () => CheckedSample[] } {
  const offsets = broker.kind !== 'rabbitmq';
  return {
    ensureTopic: (topic, options) => broker.ensureTopic(topic, options),
    async backlog(topic: string, group: string): Promise<Backlog> {
      const sentBefore = tally.sendDone;
      const handledBefore = tally.handled;
      const committedBefore = tally.committed;
      const backlog = await broker.backlog(topic, group);
      const low = sentBefore - tally.handled - (offsets ? 0 : heldMax);
      const high = tally.sendStarted - (offsets ? committedBefore : handledBefore);
      samples.push({ reported: backlog.total, low, high });
      return backlog;
    },
    outside: () => samples.filter((s) => s.reported < s.low || s.reported > s.high),
  };
}
