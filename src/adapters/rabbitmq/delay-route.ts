import { UnsupportedError } from '../../core/errors.js';

/** Delays are rounded up to a multiple of this many ms; the smallest tier. */
export const DELAY_UNIT_MS = 8;
const TIER_COUNT = 29;
/** Longest delay the tiers can compose: every tier once, about 49.7 days. */
export const MAX_DELAY_MS = DELAY_UNIT_MS * (2 ** TIER_COUNT - 1);

/** Header naming the hop after tier `ms`: `tier:<ms>`, `topic:<exchange>` or `queue:<queue>`. */
export const hopHeader = (ms: number): string => `mq-delay-${ms}`;
export const HOP_HEADER_PREFIX = 'mq-delay-';

/** Where a delayed copy goes after its last tier. */
export type DelayTarget = { kind: 'topic'; exchange: string } | { kind: 'queue'; queue: string };

export function targetValue(target: DelayTarget): string {
  return target.kind === 'topic' ? `topic:${target.exchange}` : `queue:${target.queue}`;
}

/**
 * The tiers a delay of `delayMs` passes through: the binary decomposition of the delay rounded
 * up to {@link DELAY_UNIT_MS}, longest first. Every tier appears at most once, so a header per
 * tier can name the next hop and routing stays entirely in the broker. The sum of the tiers is
 * never less than `delayMs`: a message is never delivered early (only late by the expiry
 * latency of each hop, a few ms).
 */
export function delayTiers(delayMs: number): number[] {
  if (delayMs > MAX_DELAY_MS) {
    throw new UnsupportedError(
      `delayMs ${delayMs} exceeds the longest delay RabbitMQ tier queues compose (${MAX_DELAY_MS} ms, about 49 days)`,
    );
  }
  const units = Math.ceil(delayMs / DELAY_UNIT_MS);
  const tiers: number[] = [];
  for (let bit = TIER_COUNT - 1; bit >= 0; bit--) {
    if (Math.floor(units / 2 ** bit) % 2 === 1) tiers.push(DELAY_UNIT_MS * 2 ** bit);
  }
  return tiers;
}

/** Headers that route a copy through `tiers` and then to `target`. */
export function hopHeaders(tiers: readonly number[], target: DelayTarget): Record<string, string> {
  const headers: Record<string, string> = {};
  tiers.forEach((ms, i) => {
    const next = tiers[i + 1];
    headers[hopHeader(ms)] = next === undefined ? targetValue(target) : `tier:${next}`;
  });
  return headers;
}
