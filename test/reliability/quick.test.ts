import { describe, expect, inject, it } from 'vitest';
import { formatTable, type RunResult, runMatrix, summarize } from './matrix.js';

/**
 * The quick subset of the reliability matrix that `npm test` runs: a few scenarios, one seed,
 * small counts, on the embedded broker, a private RabbitMQ node and a private Kafka node (each
 * started here: they get killed). The full matrix is `npm run test:reliability`.
 */
describe('reliability matrix, quick subset', () => {
  const run = (scenarios: string[], brokers: ('memory' | 'rabbitmq' | 'kafka')[], scale: number) =>
    runMatrix({
      seeds: [1],
      scenarios,
      brokers,
      scale,
      redisUrl: inject('redisUrl'),
      pgUrl: inject('pgUrl'),
    });

  const expectClean = (results: RunResult[], runs: number): void => {
    const table = formatTable(summarize(results));
    expect(results.length, table).toBe(runs);
    for (const r of results) {
      expect(r.violations, `${r.scenario} on ${r.broker}: ${r.notes.join('; ')}\n${table}`).toEqual([]);
      // Not trivially passing: messages went through, and each was delivered.
      expect(r.result?.confirmed ?? 0).toBeGreaterThan(0);
      expect(r.result?.delivered ?? 0).toBeGreaterThan(0);
    }
  };

  it('memory: poison messages, injected duplicates, key order under churn', async () => {
    expectClean(await run(['poison', 'duplicates', 'ordered-churn'], ['memory'], 0.05), 3);
  }, 60_000);

  it('rabbitmq: broker restarted twice (kill -9 or clean stop, by seed), network faults on both paths, consumers SIGKILLed before their ack, outbox relays SIGKILLed', async () => {
    const results = await run(['restart', 'consumer-kill', 'network', 'outbox'], ['rabbitmq'], 0.02);
    expectClean(results, 4);
    const restart = results.find((r) => r.scenario === 'restart');
    expect(restart?.result?.recoveries.length).toBe(2);
    expect(results.find((r) => r.scenario === 'network')?.result?.recoveries.length).toBe(6);
    // Two relay kills and a broker restart, each while rows were still to relay.
    expect(results.find((r) => r.scenario === 'outbox')?.result?.recoveries.length).toBe(3);
  }, 180_000);

  it('kafka: poison messages dead-lettered after exactly the configured attempts', async () => {
    expectClean(await run(['poison'], ['kafka'], 0.05), 1);
  }, 150_000);
});
