/**
 * The ledger of one reliability run: every message sent, how its send settled, every delivery
 * of it and every effect applied for it, plus the faults injected. Append-only and in memory;
 * `check` (checker.ts) turns it into counters. Times are `Date.now()` of the machine (child
 * consumer processes run on the same clock).
 */

/** One message a publisher sent. `key` and `seq` drive the per-key order check. */
export interface SentRecord {
  id: string;
  key: string | undefined;
  /** Position of the message among its key's messages (1, 2, ...); order is checked on it. */
  seq: number;
  at: number;
  /** The publish timeout the send was made with: a settle later than this (plus grace) is unsettled. */
  timeoutMs: number;
  /** A poison message: its handler always fails, so it must end in the dead-letter topic. */
  poison: boolean;
}

export interface SettleRecord {
  id: string;
  at: number;
  /** Milliseconds from the send to its settling. */
  ms: number;
}

export interface RefusedRecord extends SettleRecord {
  /** `MqError` code, or `'NOT_MQ_ERROR'` for anything else (a contract violation). */
  code: string;
  retriable: boolean;
  message: string;
}

export interface DeliveryRecord {
  id: string;
  key: string | undefined;
  seq: number | undefined;
  /** The delivery's `attempt` as the broker reported it. */
  attempt: number;
  at: number;
  /** Which consumer (process or subscription) got it. */
  consumer: string;
  /** The consumer group: every group must get every message; duplicates and order are per group. Default 'g'. */
  group?: string;
}

export interface DeadLetterRecord {
  id: string;
  /** `deadLetter.attempts` of the dead-lettered copy. */
  attempts: number;
  at: number;
}

export interface FaultRecord {
  name: string;
  start: number;
  /** When the fault was healed (the broker restarted, the proxy passes again). */
  end: number;
}

export class Ledger {
  readonly sent = new Map<string, SentRecord>();
  readonly confirmed = new Map<string, SettleRecord>();
  /** Every refusal, also of sends that were retried and confirmed later. */
  readonly refused: RefusedRecord[] = [];
  readonly deliveries: DeliveryRecord[] = [];
  /**
   * Effects applied per store (the idempotency store behind `idempotent()`: 'redis', 'pg', ...)
   * and message id. Each store's effects are checked on their own.
   */
  readonly effects = new Map<string, Map<string, number>>();
  readonly deadLetters: DeadLetterRecord[] = [];
  readonly faults: FaultRecord[] = [];
  /** Sends started and not settled yet, by id, with their start time. */
  readonly inFlight = new Map<string, number>();
  /** The dead-letter attempts poison messages must show, when the scenario has poison. */
  expectedAttempts: number | undefined;

  send(record: Omit<SentRecord, 'at'> & { at?: number }): number {
    const at = record.at ?? Date.now();
    if (!this.sent.has(record.id)) this.sent.set(record.id, { ...record, at });
    this.inFlight.set(record.id, at);
    return at;
  }

  confirm(id: string, startedAt: number, at = Date.now()): void {
    this.inFlight.delete(id);
    if (!this.confirmed.has(id)) this.confirmed.set(id, { id, at, ms: at - startedAt });
  }

  refuse(id: string, startedAt: number, error: unknown, at = Date.now()): void {
    this.inFlight.delete(id);
    const e = error as { code?: unknown; retriable?: unknown; message?: unknown } | undefined;
    const isMq = typeof e?.code === 'string' && typeof e?.retriable === 'boolean';
    this.refused.push({
      id,
      at,
      ms: at - startedAt,
      code: isMq ? (e.code as string) : 'NOT_MQ_ERROR',
      retriable: isMq ? (e.retriable as boolean) : false,
      message: String(e?.message ?? error),
    });
  }

  deliver(record: Omit<DeliveryRecord, 'at'> & { at?: number }): void {
    this.deliveries.push({ ...record, at: record.at ?? Date.now() });
  }

  effect(id: string, count = 1, store = 'default'): void {
    let byId = this.effects.get(store);
    if (byId === undefined) {
      byId = new Map();
      this.effects.set(store, byId);
    }
    byId.set(id, (byId.get(id) ?? 0) + count);
  }

  /** Replaces a store's effect counts with ones read from the store itself. */
  setEffects(store: string, counts: Map<string, number>): void {
    this.effects.set(store, counts);
  }

  deadLetter(id: string, attempts: number, at = Date.now()): void {
    this.deadLetters.push({ id, attempts, at });
  }

  fault(name: string, start: number, end: number): void {
    this.faults.push({ name, start, end });
  }

  /** Confirmed sends so far. */
  get confirmedCount(): number {
    return this.confirmed.size;
  }

  /** Ids delivered at least once. */
  deliveredIds(): Set<string> {
    return new Set(this.deliveries.map((d) => d.id));
  }
}
