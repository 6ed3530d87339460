import type { Headers } from '../../core/message.js';
import { H } from '../../core/wire.js';
import type { FetchedRecord, OutgoingRecord } from './client.js';

/** A delay tier: topic `<prefix>.<name>`, where a record waits `ms` (or less, if due sooner). */
export interface DelayTier {
  readonly ms: number;
  readonly name: string;
}

/** The tiers, shortest first. A delay is a sum of hops through them (greedy, longest first). */
export const DELAY_TIERS: readonly DelayTier[] = Object.freeze([
  { ms: 100, name: '100ms' },
  { ms: 500, name: '500ms' },
  { ms: 2_000, name: '2s' },
  { ms: 10_000, name: '10s' },
  { ms: 60_000, name: '1m' },
  { ms: 600_000, name: '10m' },
  { ms: 3_600_000, name: '1h' },
]);

/** Partitions of each tier topic, so several forwarders can share a tier. */
export const TIER_PARTITIONS = 4;

export function tierTopic(prefix: string, tier: DelayTier): string {
  return `${prefix}.${tier.name}`;
}

/**
 * `<prefix>.undeliverable`: where the forwarder sets aside a delayed record its target refuses
 * for good (too large for it, say), with the error in dead-letter headers, so one such record
 * does not hold up its tier partition.
 */
export function undeliverableTopic(prefix: string): string {
  return `${prefix}.undeliverable`;
}

/** The longest tier not above `remainingMs` (the shortest when all are above). */
export function tierFor(remainingMs: number): DelayTier {
  let chosen = DELAY_TIERS[0] as DelayTier;
  for (const tier of DELAY_TIERS) if (tier.ms <= remainingMs) chosen = tier;
  return chosen;
}

/**
 * The next hop of a delayed record due at `deliverAt` (its `mq-deliver-at` header) towards its
 * `mq-target-topic`: the target itself once due, with the delay headers removed, or else the
 * tier for the time that remains.
 */
export function nextHop(
  prefix: string,
  record: { key: string | undefined; value: Uint8Array; headers: Headers },
  target: string,
  deliverAt: number,
  now: number,
): OutgoingRecord {
  const remaining = deliverAt - now;
  if (remaining <= 0) {
    const headers = { ...record.headers };
    delete headers[H.targetTopic];
    delete headers[H.targetGroup];
    delete headers[H.deliverAt];
    return { topic: target, key: record.key, value: record.value, headers };
  }
  return {
    topic: tierTopic(prefix, tierFor(remaining)),
    key: record.key,
    value: record.value,
    headers: record.headers,
  };
}

/**
 * When the forwarder of `tier` acts on a record: at its delivery time, or once it has waited
 * the tier's time, whichever comes first. Within a tier partition these times follow the record
 * order up to the shortest tier, so waiting for the head never delays the rest by more.
 * Undefined for a record that is not a delayed copy (no target or delivery time).
 */
export function dueAt(
  tier: DelayTier,
  record: FetchedRecord,
): { due: number; target: string; deliverAt: number } | undefined {
  const target = record.headers[H.targetTopic];
  const deliverAt = Number(record.headers[H.deliverAt]);
  if (target === undefined || target === '' || !Number.isFinite(deliverAt)) return undefined;
  return { due: Math.min(deliverAt, record.timestamp + tier.ms), target, deliverAt };
}
