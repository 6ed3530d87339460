import { expect } from 'vitest';
import { isMqError, type Producer } from '../../src/index.js';
import { type Collector, waitFor } from '../../src/testing/index.js';

/**
 * Three publishers keep sending to `topic` across a broker crash, each awaiting its own
 * acknowledgement: 300 acknowledged, then `crash()`, then `restart()`, then 300 more. Asserts
 * that every failed send failed retriably and that every acknowledged one reaches each collector.
 */
export async function expectNothingAcknowledgedLost(options: {
  producer: Producer;
  topic: string;
  collectors: Record<string, Collector<{ i: number }>>;
  crash: () => Promise<void>;
  restart: () => Promise<void>;
  timeoutMs: number;
}): Promise<void> {
  const { producer, topic, collectors, timeoutMs } = options;
  const acknowledged = new Set<string>();
  const failed: unknown[] = [];
  let next = 0;
  let sending = true;
  const publishers = Array.from({ length: 3 }, async () => {
    while (sending) {
      const i = next++;
      try {
        acknowledged.add((await producer.send({ topic, key: `k${i % 7}`, body: { i } })).id);
      } catch (error) {
        failed.push(error);
      }
    }
  });
  await waitFor(() => acknowledged.size >= 300, { timeoutMs });
  await options.crash();
  const atCrash = acknowledged.size;
  await options.restart();
  await waitFor(() => acknowledged.size >= atCrash + 300, {
    timeoutMs,
    message: () => `${acknowledged.size - atCrash} sends acknowledged since the restart`,
  });
  sending = false;
  await Promise.all(publishers);

  for (const error of failed) expect(isMqError(error) && error.retriable, String(error)).toBe(true);
  const missing = (c: Collector<{ i: number }>) => [...acknowledged].filter((id) => !c.ids.has(id)).length;
  const report = () =>
    Object.entries(collectors)
      .map(([name, c]) => `${missing(c)} (${name})`)
      .join(', ');
  await waitFor(() => Object.values(collectors).every((c) => missing(c) === 0), {
    timeoutMs,
    message: () => `acknowledged but not delivered: ${report()} of ${acknowledged.size}`,
  });
}
