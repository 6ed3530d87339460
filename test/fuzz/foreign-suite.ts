import type fc from 'fast-check';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { type Broker, connect, type Subscription } from '../../src/index.js';
import { uniqueName, waitFor } from '../../src/testing/index.js';
import { CODES, checkProperty, ProcessWatch, runs, settle, spyLogger, summary } from './harness.js';

/** Header every fuzzed message carries so the suite can tell where it went. */
export const SEQ = 'x-fuzz-seq';
/** Header that makes the handler throw, so the message goes through retry to the dead-letter topic. */
export const THROW = 'x-fuzz-throw';

/** A dead-letter record as a plain client read it: its headers as strings. */
export type DeadRecord = Record<string, string>;

/** What a broker's plain client does for the suite. */
export interface ForeignClient<M> {
  /** Publishes messages as another application would (each already carries `SEQ` and maybe `THROW`). Returns the seqs it could publish. */
  publish(topic: string, messages: readonly M[]): Promise<string[]>;
  /** Reads the dead-letter topic `dlq` from its start with a plain consumer, calling `onRecord` for each record. */
  readDeadLetters(dlq: string, onRecord: (record: DeadRecord) => void): Promise<void>;
  close(): Promise<void>;
}

/**
 * Foreign messages: random bytes, truncated JSON, random headers and properties, published by a
 * plain client to a topic an mqkit group consumes. Each must reach the handler, or be
 * dead-lettered to `<topic>.<group>.dlq` with its reason (`mq-error-code`, `mq-error-message`);
 * the consumer must not crash. `messages(seq)` makes the generator of one batch.
 */
export function foreignFuzzSuite<M>(options: {
  kind: 'rabbitmq' | 'kafka';
  url: () => string;
  client: () => Promise<ForeignClient<M>>;
  /** A batch of foreign messages; `tag(m, seq, throws)` adds the suite's headers to one. */
  batch: fc.Arbitrary<{ message: M; throws: boolean }[]>;
  tag: (message: M, seq: string, throws: boolean) => M;
  /** A plain JSON message any consumer takes. */
  canary: M;
  partitions: number;
  weight: number;
  settleMs: number;
}): void {
  describe(`fuzz ${options.kind}: foreign messages from a plain client`, () => {
    const watch = new ProcessWatch();
    const spy = spyLogger();
    const topic = uniqueName('fz-foreign');
    const group = 'g';
    const dlq = `${topic}.${group}.dlq`;
    const handled = new Set<string>();
    const unmarked: string[] = [];
    const dead = new Map<string, DeadRecord>();
    const deadUnmarked: DeadRecord[] = [];
    let broker: Broker;
    let client: ForeignClient<M>;
    let subscription: Subscription;
    let published = 0;
    let runNo = 0;

    beforeAll(async () => {
      watch.install();
      broker = await connect(options.url(), { logger: spy.logger });
      await broker.ensureTopic(topic, { partitions: options.partitions });
      await broker.ensureTopic(dlq, { partitions: 1 });
      client = await options.client();
      await client.readDeadLetters(dlq, (record) => {
        const seq = record[SEQ];
        if (seq === undefined) deadUnmarked.push(record);
        else dead.set(seq, record);
      });
      subscription = await broker.subscribe(
        {
          topic,
          group,
          order: 'concurrent',
          concurrency: 4,
          retry: { attempts: 2, backoff: { initialMs: 10, maxMs: 10 } },
        },
        (d) => {
          const seq = d.headers[SEQ];
          if (seq === undefined) unmarked.push(`${d.id} ${JSON.stringify(d.headers).slice(0, 200)}`);
          if (d.headers[THROW] === '1') throw new Error('fuzz: this handler refuses the message');
          if (seq !== undefined) handled.add(seq);
        },
      );
    }, 120_000);

    afterAll(async () => {
      try {
        await settle('subscription.close()', 30_000, () => subscription?.close({ timeoutMs: 5000 }));
        await settle('broker.close()', 30_000, () => broker?.close());
        await client?.close();
      } finally {
        watch.uninstall();
        console.log(`${summary(`${options.kind} foreign`)}; ${published} messages published`);
      }
    }, 90_000);

    it(
      'each message reaches the handler or is dead-lettered with its reason; the consumer never crashes',
      async () => {
        await checkProperty(
          'foreign',
          options.batch,
          async (batch) => {
            const run = ++runNo;
            const tagged = batch.map((b, i) => ({ ...b, seq: `${run}-${i}`, throws: b.throws }));
            const seqs = await client.publish(
              topic,
              tagged.map((t) => options.tag(t.message, t.seq, t.throws)),
            );
            published += seqs.length;
            const expected = tagged.filter((t) => seqs.includes(t.seq));
            const settled = await settle(
              'waiting for every message to be handled or dead-lettered',
              options.settleMs,
              () =>
                waitFor(() => expected.every((t) => handled.has(t.seq) || dead.has(t.seq)), {
                  timeoutMs: options.settleMs - 500,
                  intervalMs: 20,
                }),
            ).catch((error) => ({ ok: false as const, error }));
            await watch.flush();
            watch.expectNoCrash('consumer');
            if (!settled.ok) {
              const missing = expected
                .filter((t) => !handled.has(t.seq) && !dead.has(t.seq))
                .map((t) => t.seq);
              throw new Error(
                `messages ${missing.join(', ')} neither reached the handler nor the dead-letter topic within ${options.settleMs} ms` +
                  ` (deliveries without the seq header: ${unmarked.length}, e.g. ${unmarked.slice(-2).join(' | ')};` +
                  ` dead letters without it: ${deadUnmarked.length}; warnings/errors logged: ${spy.lines
                    .filter((l) => /^(warn|error)/.test(l))
                    .slice(-3)
                    .map((l) => l.slice(0, 300))
                    .join(' | ')})`,
              );
            }
            for (const t of expected) {
              const record = dead.get(t.seq);
              if (t.throws && handled.has(t.seq))
                throw new Error(`message ${t.seq} was acknowledged though its handler threw`);
              if (record === undefined) continue;
              const code = record['mq-error-code'];
              if (code === undefined || !(CODES.has(code) || code === 'HANDLER'))
                throw new Error(`dead letter ${t.seq} has no valid mq-error-code: ${JSON.stringify(record)}`);
              if (!record['mq-error-message'])
                throw new Error(`dead letter ${t.seq} has no mq-error-message: ${JSON.stringify(record)}`);
              if (record['mq-original-topic'] !== topic || record['mq-original-group'] !== group)
                throw new Error(`dead letter ${t.seq} names another origin: ${JSON.stringify(record)}`);
            }
            if (spy.misshapen.length > 0)
              throw new Error(`logger called out of shape: ${spy.misshapen.join(', ')}`);
          },
          runs(options.weight),
          Number(process.env.MQKIT_FUZZ_TIME_LIMIT_MS ?? 90_000),
        );
      },
      Number(process.env.MQKIT_FUZZ_TIME_LIMIT_MS ?? 90_000) + 60_000,
    );

    it('after the fuzzed messages, a plain JSON message still reaches the handler', async () => {
      const seq = 'final';
      await client.publish(topic, [options.tag(options.canary, seq, false)]);
      await waitFor(() => handled.has(seq), {
        timeoutMs: options.settleMs,
        message: 'the consumer took nothing more',
      });
      await watch.flush();
      watch.expectNoCrash('consumer');
    }, 60_000);
  });
}
