import { describe, expect, it } from 'vitest';
import { ConnectionError, TimeoutError } from '../../src/index.js';
import { check, SETTLE_GRACE_MS, violations } from './checker.js';
import { Ledger } from './ledger.js';

/** A ledger with messages m1..mN on key `k`, sent at t=0 and confirmed at t=1. */
function healthy(n: number): Ledger {
  const ledger = new Ledger();
  for (let i = 1; i <= n; i++) {
    ledger.send({ id: `m${i}`, key: 'k', seq: i, timeoutMs: 1000, poison: false, at: 0 });
    ledger.confirm(`m${i}`, 0, 1);
  }
  return ledger;
}

function deliverAll(ledger: Ledger, ids: string[], at = 10): void {
  for (const id of ids) {
    const seq = ledger.sent.get(id)?.seq;
    ledger.deliver({ id, key: 'k', seq, attempt: 1, at: at++, consumer: 'c' });
    ledger.effect(id);
  }
}

describe('reliability checker', () => {
  it('passes a clean run: every counter 0', () => {
    const ledger = healthy(3);
    deliverAll(ledger, ['m1', 'm2', 'm3']);
    const result = check(ledger, { now: 100 });
    expect(violations(result)).toEqual([]);
    expect(result).toMatchObject({
      messages: 3,
      confirmed: 3,
      delivered: 3,
      lost: 0,
      duplicateDeliveries: 0,
    });
  });

  it('counts a confirmed send never delivered as lost, an unconfirmed one not', () => {
    const ledger = healthy(3);
    ledger.send({ id: 'x', key: 'k', seq: 9, timeoutMs: 1000, poison: false, at: 0 });
    ledger.refuse('x', 0, new TimeoutError('send timed out'), 1000);
    deliverAll(ledger, ['m1', 'm3']);
    const result = check(ledger, { now: 2000 });
    expect(result.lost).toBe(1);
    expect(result.refusedFinal).toBe(1);
    expect(result.badRefusals).toBe(0);
    expect(violations(result)).toEqual(['lost=1: confirmed sends never delivered']);
  });

  it('counts deliveries of ids never sent as unexpected (also in the dead-letter topic)', () => {
    const ledger = healthy(1);
    deliverAll(ledger, ['m1', 'ghost']);
    ledger.deadLetter('ghost-2', 3);
    const result = check(ledger, { now: 100 });
    expect(result.unexpected).toBe(2);
  });

  it('counts duplicate deliveries (allowed) apart from duplicate effects (not allowed)', () => {
    const ledger = healthy(2);
    deliverAll(ledger, ['m1', 'm2']);
    ledger.deliver({ id: 'm1', key: 'k', seq: 1, attempt: 2, at: 50, consumer: 'c' });
    ledger.deliver({ id: 'm1', key: 'k', seq: 1, attempt: 3, at: 51, consumer: 'c' });
    let result = check(ledger, { now: 100 });
    expect(result.duplicateDeliveries).toBe(2);
    expect(result.duplicateEffects).toBe(0);
    expect(violations(result)).toEqual([]);
    ledger.effect('m2');
    result = check(ledger, { now: 100 });
    expect(result.duplicateEffects).toBe(1);
  });

  it('counts a delivered message with no effect as a missing effect, unless effects are not expected', () => {
    const ledger = healthy(1);
    ledger.deliver({ id: 'm1', key: 'k', seq: 1, attempt: 1, at: 5, consumer: 'c' });
    expect(check(ledger, { now: 100 }).missingEffects).toBe(1);
    expect(check(ledger, { now: 100, expectEffects: false }).missingEffects).toBe(0);
  });

  it('checks key order on first deliveries only: a redelivery of an earlier message is fine, a skip back is not', () => {
    const ledger = healthy(4);
    // m1 m2 (m1 again: a redelivery) m4 m3: m3's first delivery comes after m4's.
    deliverAll(ledger, ['m1', 'm2']);
    ledger.deliver({ id: 'm1', key: 'k', seq: 1, attempt: 2, at: 20, consumer: 'c' });
    ledger.deliver({ id: 'm4', key: 'k', seq: 4, attempt: 1, at: 21, consumer: 'c' });
    ledger.deliver({ id: 'm3', key: 'k', seq: 3, attempt: 1, at: 22, consumer: 'c' });
    ledger.effect('m3');
    ledger.effect('m4');
    expect(check(ledger, { now: 100 }).orderViolations).toBe(1);
    expect(check(ledger, { now: 100, ordered: false }).orderViolations).toBe(0);
  });

  it('counts sends in flight past their timeout, and settles that came late, as unsettled', () => {
    const ledger = healthy(1);
    deliverAll(ledger, ['m1']);
    ledger.send({ id: 'hung', key: 'k', seq: 2, timeoutMs: 1000, poison: false, at: 0 });
    ledger.send({ id: 'late', key: 'k', seq: 3, timeoutMs: 1000, poison: false, at: 0 });
    ledger.confirm('late', 0, 1000 + SETTLE_GRACE_MS + 1);
    deliverAll(ledger, ['late'], 1000 + SETTLE_GRACE_MS + 2);
    expect(check(ledger, { now: 500 }).unsettled).toBe(1); // 'late' only: 'hung' is still within its time
    expect(check(ledger, { now: 1000 + SETTLE_GRACE_MS + 10 }).unsettled).toBe(2);
  });

  it('counts a refusal that is not a retriable MqError as bad', () => {
    const ledger = healthy(0);
    ledger.send({ id: 'a', key: 'k', seq: 1, timeoutMs: 1000, poison: false, at: 0 });
    ledger.refuse('a', 0, new Error('plain'), 1);
    ledger.send({ id: 'b', key: 'k', seq: 2, timeoutMs: 1000, poison: false, at: 0 });
    ledger.refuse('b', 0, new ConnectionError('refused', { retriable: false }), 1);
    ledger.send({ id: 'c', key: 'k', seq: 3, timeoutMs: 1000, poison: false, at: 0 });
    ledger.refuse('c', 0, new ConnectionError('refused'), 1);
    const result = check(ledger, { now: 10 });
    expect(result.badRefusals).toBe(2);
    expect(ledger.refused.map((r) => r.code)).toEqual(['NOT_MQ_ERROR', 'CONNECTION', 'CONNECTION']);
  });

  it('checks poison messages: dead-lettered after exactly the configured attempts, healthy ones never', () => {
    const ledger = healthy(2);
    ledger.expectedAttempts = 3;
    for (const [id, seq] of [
      ['p1', 3],
      ['p2', 4],
      ['p3', 5],
    ] as const) {
      ledger.send({ id, key: 'k', seq, timeoutMs: 1000, poison: true, at: 0 });
      ledger.confirm(id, 0, 1);
      for (let attempt = 1; attempt <= 3; attempt++)
        ledger.deliver({ id, key: 'k', seq, attempt, at: 10 + attempt, consumer: 'c' });
    }
    deliverAll(ledger, ['m1', 'm2'], 100);
    ledger.deadLetter('p1', 3);
    ledger.deadLetter('p2', 2); // wrong attempts; p3 is missing
    ledger.deadLetter('m2', 3);
    const result = check(ledger, { now: 200, ordered: false });
    expect(result.deadLetterMismatches).toBe(2);
    expect(result.unexpectedDeadLetters).toBe(1);
    expect(result.duplicateDeliveries).toBe(0); // a poison message's 3 attempts are not duplicates
    expect(result.lost).toBe(0);
  });

  it('measures time to recover from the end of each fault; a fault with work left and nothing after it is unrecovered', () => {
    const ledger = healthy(0);
    ledger.send({ id: 'a', key: 'k', seq: 1, timeoutMs: 1000, poison: false, at: 0 });
    ledger.confirm('a', 0, 1200);
    ledger.deliver({ id: 'a', key: 'k', seq: 1, attempt: 1, at: 1500, consumer: 'c' });
    ledger.effect('a');
    ledger.fault('kill', 500, 1000);
    ledger.fault('late', 1600, 1700); // everything was confirmed and delivered before it: nothing to recover
    let result = check(ledger, { now: 2000 });
    expect(result.recoveries).toEqual([
      { fault: 'kill', confirmMs: 200, deliverMs: 500, confirmNeeded: true, deliverNeeded: true },
      {
        fault: 'late',
        confirmMs: undefined,
        deliverMs: undefined,
        confirmNeeded: false,
        deliverNeeded: false,
      },
    ]);
    expect(result.unrecovered).toBe(0);
    expect(result.maxRecoveryMs).toBe(500);
    // A send still unconfirmed at the end of a fault, and none confirmed since: not recovered.
    ledger.send({ id: 'b', key: 'k', seq: 2, timeoutMs: 100_000, poison: false, at: 1650 });
    result = check(ledger, { now: 2000 });
    expect(result.unrecovered).toBe(1);
  });

  it('checks each consumer group and each effect store on its own', () => {
    const ledger = healthy(2);
    for (const group of ['redis-group', 'pg-group']) {
      ledger.deliver({ id: 'm1', key: 'k', seq: 1, attempt: 1, at: 10, consumer: 'c', group });
      ledger.effect('m1', 1, group);
    }
    // m2 reached one group only; its effect applied twice in that group's store.
    ledger.deliver({ id: 'm2', key: 'k', seq: 2, attempt: 1, at: 11, consumer: 'c', group: 'redis-group' });
    ledger.effect('m2', 2, 'redis-group');
    const result = check(ledger, { now: 100 });
    expect(result.lost).toBe(1);
    expect(result.duplicateEffects).toBe(1);
    expect(result.missingEffects).toBe(1); // m2 in the pg store
    expect(result.orderViolations).toBe(0); // order is per group: m1 in pg-group is not after m2
  });
});
