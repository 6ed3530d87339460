import type { Ledger } from './ledger.js';

/** How long after its timeout a send may still settle (timers on a loaded 2-core machine). */
export const SETTLE_GRACE_MS = 5_000;

/** Time to recover after one fault: from its end to the first confirmed send and the first delivery. */
export interface Recovery {
  fault: string;
  /** ms from the fault's end to the first send confirmed after it; undefined: none was. */
  confirmMs: number | undefined;
  /** ms from the fault's end to the first delivery after it; undefined: none was. */
  deliverMs: number | undefined;
  /** Some send was not confirmed by the fault's end (else there was nothing to recover). */
  confirmNeeded: boolean;
  /** Some confirmed message was not delivered by the fault's end. */
  deliverNeeded: boolean;
}

/**
 * What a run's ledger shows (in the spirit of Jepsen's total-queue checker). The invariants
 * (see {@link violations}) are on `lost`, `unexpected`, `duplicateEffects`, `missingEffects`,
 * `orderViolations`, `unsettled`, `badRefusals`, the dead-letter counters and recovery;
 * duplicate deliveries are counted, not forbidden (delivery is at-least-once).
 */
export interface CheckResult {
  /** Messages sent (distinct ids). */
  messages: number;
  confirmed: number;
  /** Sends that never got confirmed (each refused at least once and given up). */
  refusedFinal: number;
  /** Refusals in all, also of sends retried and confirmed later. */
  refusals: number;
  /** Refusals per error code. */
  refusalsByCode: Record<string, number>;
  /** Refusals that were not a retriable `MqError` (a typed retriable error is the contract). */
  badRefusals: number;
  /** Sends that neither confirmed nor failed with a typed error within their timeout (plus grace). */
  unsettled: number;
  /** Distinct ids delivered. */
  delivered: number;
  /** Confirmed, not poison, never delivered (once per consumer group that missed it). */
  lost: number;
  /** Delivered (or dead-lettered) but never sent. */
  unexpected: number;
  /** Deliveries beyond the first of each id, poison retries excluded. */
  duplicateDeliveries: number;
  /** Effects beyond the first of each id. */
  duplicateEffects: number;
  /** The same, per effect store (consumer group). */
  duplicateEffectsByStore: Record<string, number>;
  /** Up to 20 `store:id` with more than one effect, to look into. */
  duplicateEffectIds: string[];
  /** Delivered, not poison, with no effect applied, per effect store (only counted when `expectEffects`). */
  missingEffects: number;
  /** Per key, first deliveries whose `seq` is not above the previous first delivery's. */
  orderViolations: number;
  /** Poison messages missing from the dead-letter topic, or there with the wrong attempts. */
  deadLetterMismatches: number;
  /** Dead-lettered messages that were not poison. */
  unexpectedDeadLetters: number;
  recoveries: Recovery[];
  /** Faults after which no send was confirmed or nothing was delivered, though work remained. */
  unrecovered: number;
  /** The largest recovery time over all faults (confirm or deliver), ms; 0 without faults. */
  maxRecoveryMs: number;
}

export interface CheckOptions {
  /** Count `missingEffects` (scenarios whose handler applies an effect per message). Default true. */
  expectEffects?: boolean;
  /** Check per-key order of first deliveries (ordered scenarios). Default true. */
  ordered?: boolean;
  /** Now, for unsettled sends still in flight. Default `Date.now()`. */
  now?: number;
}

/** Counts what the ledger shows; pure. */
export function check(ledger: Ledger, options: CheckOptions = {}): CheckResult {
  const expectEffects = options.expectEffects ?? true;
  const ordered = options.ordered ?? true;
  const now = options.now ?? Date.now();

  const duplicateEffectIds: string[] = [];
  const groups = new Map<string, Map<string, number>>();
  for (const d of ledger.deliveries) {
    const group = d.group ?? 'g';
    let counts = groups.get(group);
    if (counts === undefined) {
      counts = new Map();
      groups.set(group, counts);
    }
    counts.set(d.id, (counts.get(d.id) ?? 0) + 1);
  }
  if (groups.size === 0) groups.set('g', new Map());
  const deliveredIds = new Set(ledger.deliveries.map((d) => d.id));
  const deadLettered = new Map<string, number[]>();
  for (const d of ledger.deadLetters) deadLettered.set(d.id, [...(deadLettered.get(d.id) ?? []), d.attempts]);

  // Lost: a confirmed message some group never got (counted once per group that missed it).
  let lost = 0;
  for (const [id] of ledger.confirmed) {
    const sent = ledger.sent.get(id);
    if (sent?.poison) continue;
    for (const counts of groups.values()) if (!counts.has(id)) lost++;
  }
  let unexpected = 0;
  for (const id of deliveredIds) if (!ledger.sent.has(id)) unexpected++;
  for (const id of deadLettered.keys()) if (!ledger.sent.has(id)) unexpected++;

  let duplicateDeliveries = 0;
  for (const counts of groups.values()) {
    for (const [id, n] of counts) {
      // A poison message is delivered once per attempt by design; its repeats are not duplicates.
      const allowed = ledger.sent.get(id)?.poison ? (ledger.expectedAttempts ?? 1) : 1;
      if (n > allowed) duplicateDeliveries += n - allowed;
    }
  }

  let duplicateEffects = 0;
  const duplicateEffectsByStore: Record<string, number> = {};
  for (const [store, byId] of ledger.effects) {
    for (const [id, n] of byId) {
      if (n <= 1) continue;
      duplicateEffects += n - 1;
      duplicateEffectsByStore[store] = (duplicateEffectsByStore[store] ?? 0) + n - 1;
      if (duplicateEffectIds.length < 20) duplicateEffectIds.push(`${store}:${id}`);
    }
  }
  let missingEffects = 0;
  if (expectEffects) {
    const stores = ledger.effects.size > 0 ? [...ledger.effects.values()] : [new Map<string, number>()];
    for (const id of deliveredIds) {
      const sent = ledger.sent.get(id);
      if (sent === undefined || sent.poison) continue;
      for (const byId of stores) if (!byId.has(id)) missingEffects++;
    }
  }

  let orderViolations = 0;
  if (ordered) {
    const seen = new Set<string>();
    const lastSeq = new Map<string, number>();
    for (const d of [...ledger.deliveries].sort((a, b) => a.at - b.at)) {
      const group = d.group ?? 'g';
      if (seen.has(`${group}\u0000${d.id}`)) continue;
      seen.add(`${group}\u0000${d.id}`);
      if (d.key === undefined || d.seq === undefined) continue;
      const key = `${group}\u0000${d.key}`;
      const last = lastSeq.get(key);
      if (last !== undefined && d.seq <= last) orderViolations++;
      else lastSeq.set(key, d.seq);
    }
  }

  let deadLetterMismatches = 0;
  let unexpectedDeadLetters = 0;
  for (const [id, sent] of ledger.sent) {
    const attempts = deadLettered.get(id);
    if (!sent.poison) {
      if (attempts !== undefined) unexpectedDeadLetters++;
      continue;
    }
    if (!ledger.confirmed.has(id)) continue; // a poison message that was never stored cannot be dead-lettered
    // Handled exactly `expectedAttempts` times in each group, then dead-lettered once with that count.
    const handledExactly =
      ledger.expectedAttempts === undefined ||
      [...groups.values()].every((counts) => counts.get(id) === ledger.expectedAttempts);
    if (attempts === undefined || !handledExactly) deadLetterMismatches++;
    else if (ledger.expectedAttempts !== undefined && attempts.some((a) => a !== ledger.expectedAttempts))
      deadLetterMismatches++;
  }

  const settled = new Set<string>([...ledger.confirmed.keys()]);
  let unsettled = 0;
  for (const r of ledger.refused) {
    const sent = ledger.sent.get(r.id);
    if (sent && r.ms > sent.timeoutMs + SETTLE_GRACE_MS) unsettled++;
    settled.add(r.id);
  }
  for (const [id, c] of ledger.confirmed) {
    const sent = ledger.sent.get(id);
    if (sent && c.ms > sent.timeoutMs + SETTLE_GRACE_MS) unsettled++;
  }
  for (const [id, startedAt] of ledger.inFlight) {
    const sent = ledger.sent.get(id);
    if (sent && now - startedAt > sent.timeoutMs + SETTLE_GRACE_MS) unsettled++;
  }
  const badRefusals = ledger.refused.filter((r) => !r.retriable).length;
  const refusalsByCode: Record<string, number> = {};
  for (const r of ledger.refused) refusalsByCode[r.code] = (refusalsByCode[r.code] ?? 0) + 1;
  const refusedFinal = [...ledger.sent.keys()].filter(
    (id) => !ledger.confirmed.has(id) && !ledger.inFlight.has(id),
  ).length;

  const confirmTimes = [...ledger.confirmed.values()].map((c) => c.at).sort((a, b) => a - b);
  const deliverTimes = ledger.deliveries.map((d) => d.at).sort((a, b) => a - b);
  const firstAfter = (times: number[], t: number): number | undefined => {
    const found = times.find((x) => x >= t);
    return found === undefined ? undefined : found - t;
  };
  // A fault needs a recovery only where work remained after it: a send not confirmed by its
  // end, a confirmed message not yet delivered by its end. Otherwise there is nothing to wait for.
  const firstDelivery = new Map<string, number>();
  for (const d of ledger.deliveries) firstDelivery.set(d.id, Math.min(firstDelivery.get(d.id) ?? d.at, d.at));
  const recoveries = ledger.faults.map((f) => {
    const confirmNeeded = [...ledger.sent.keys()].some(
      (id) => (ledger.confirmed.get(id)?.at ?? Number.POSITIVE_INFINITY) >= f.end,
    );
    const deliverNeeded = [...ledger.confirmed.keys()].some(
      (id) => !ledger.sent.get(id)?.poison && (firstDelivery.get(id) ?? Number.POSITIVE_INFINITY) >= f.end,
    );
    return {
      fault: f.name,
      confirmMs: firstAfter(confirmTimes, f.end),
      deliverMs: firstAfter(deliverTimes, f.end),
      confirmNeeded,
      deliverNeeded,
    };
  });
  const unrecovered = recoveries.filter(
    (r) => (r.confirmNeeded && r.confirmMs === undefined) || (r.deliverNeeded && r.deliverMs === undefined),
  ).length;
  const maxRecoveryMs = recoveries.reduce((max, r) => Math.max(max, r.confirmMs ?? 0, r.deliverMs ?? 0), 0);

  return {
    messages: ledger.sent.size,
    confirmed: ledger.confirmed.size,
    refusedFinal,
    refusals: ledger.refused.length,
    refusalsByCode,
    badRefusals,
    unsettled,
    delivered: deliveredIds.size,
    lost,
    unexpected,
    duplicateDeliveries,
    duplicateEffects,
    duplicateEffectsByStore,
    duplicateEffectIds,
    missingEffects,
    orderViolations,
    deadLetterMismatches,
    unexpectedDeadLetters,
    recoveries,
    unrecovered,
    maxRecoveryMs,
  };
}

/** The invariants a run broke, one line each; empty when it passed. */
export function violations(result: CheckResult): string[] {
  const out: string[] = [];
  const must = (name: keyof CheckResult, what: string): void => {
    const n = result[name] as number;
    if (n !== 0) out.push(`${name}=${n}: ${what}`);
  };
  must('lost', 'confirmed sends never delivered');
  must('unexpected', 'deliveries of messages never sent');
  if (result.duplicateEffects !== 0)
    out.push(
      `duplicateEffects=${result.duplicateEffects} (${JSON.stringify(result.duplicateEffectsByStore)}): effects applied more than once through idempotent()`,
    );
  must('missingEffects', 'delivered messages whose effect was never applied');
  must('orderViolations', 'first deliveries out of key order');
  must('unsettled', 'sends that neither confirmed nor failed within their timeout');
  must('badRefusals', 'sends refused with something other than a retriable MqError');
  must('deadLetterMismatches', 'poison messages not dead-lettered after exactly the configured attempts');
  must('unexpectedDeadLetters', 'healthy messages dead-lettered');
  must('unrecovered', 'faults after which no send confirmed or nothing was delivered');
  return out;
}
