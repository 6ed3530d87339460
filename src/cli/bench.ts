import { performance } from 'node:perf_hooks';
import type { Acks, Broker, Subscription } from '../core/broker.js';
import { bytesCodec, defineTopic } from '../core/codec.js';

/** One measured run. Rates are messages per second; latencies are send-to-handler, in ms. */
export interface BenchResult {
  label: string;
  messages: number;
  size: number;
  produceRate: number;
  endToEndRate: number;
  p50Ms: number;
  p99Ms: number;
  seconds: number;
}

export interface BenchOptions {
  label: string;
  messages: number;
  /** Body size in bytes (at least 8: the send time travels in the body). */
  size: number;
  acks: Acks;
  partitions: number;
  /** Messages per `sendBatch` call. */
  batch: number;
  /** `sendBatch` calls in flight at once. */
  inflight: number;
  /** Handler concurrency of the subscription. */
  concurrency: number;
  /** Subscription order mode. */
  order: 'concurrent' | 'key' | 'partition';
  /** Distinct message keys, round robin; 0 sends without keys. */
  keys: number;
  /** Simulated I/O per handler call (a timer; per batch with `batchSize`), in ms; 0 = none. */
  handlerMs: number;
  /**
   * Producers wait while more than this many messages are sent but not yet handled, so the
   * latency figures measure the pipeline, not an ever-growing queue. 0 = no limit.
   */
  maxLag: number;
  /** Reuse a topic (and its group 'bench') across runs; default a new topic per run. */
  topic?: string;
  /**
   * mqkit only: subscribe with a batch handler taking up to this many deliveries at once
   * (`batch: { maxSize }`); absent or 0, a per-message handler.
   */
  batchSize?: number;
}

export const benchDefaults: Omit<BenchOptions, 'label'> = {
  messages: 100_000,
  size: 100,
  acks: 'all',
  partitions: 4,
  batch: 500,
  inflight: 4,
  concurrency: 16,
  order: 'partition',
  keys: 0,
  handlerMs: 0,
  maxLag: 50_000,
};

/** One message of a benchmark batch. */
export interface BenchMessage {
  body: Buffer;
  key: string | undefined;
}

/**
 * What a benchmark drives: mqkit or a raw client. `runWorkload` is the one workload every
 * run goes through, so mqkit and the raw baselines differ only in their transport.
 */
export interface BenchTransport {
  /** Starts consuming, resolving once ready; calls `received(body)` after each message is handled. */
  consume(received: (body: Buffer) => void): Promise<void>;
  /** Sends one batch and resolves once the broker acknowledged it. */
  send(batch: BenchMessage[]): Promise<void>;
  close(): Promise<void>;
}

/**
 * Sends `messages` bodies of `size` bytes in batches of `batch`, `inflight` batches at once,
 * waiting while more than `maxLag` are sent but not handled, and consumes them in the same
 * process. The body carries its send time, so latency needs no clock agreement.
 */
export async function runWorkload(options: BenchOptions, transport: BenchTransport): Promise<BenchResult> {
  const latencies = new Float64Array(options.messages);
  let received = 0;
  let next = 0;
  let finish: () => void = () => {};
  let wakeProducers: (() => void) | undefined;
  const allReceived = new Promise<void>((resolve) => {
    finish = resolve;
  });
  await transport.consume((body) => {
    if (received < options.messages) latencies[received] = performance.now() - body.readDoubleLE(0);
    if (++received === options.messages) finish();
    if (wakeProducers !== undefined && next - received <= options.maxLag / 2) {
      wakeProducers();
      wakeProducers = undefined;
    }
  });
  const template = Buffer.alloc(Math.max(8, options.size), 0x61);
  const started = performance.now();
  const lane = async () => {
    while (next < options.messages) {
      while (options.maxLag > 0 && next - received > options.maxLag) {
        await new Promise<void>((resolve) => {
          const previous = wakeProducers;
          wakeProducers = () => {
            previous?.();
            resolve();
          };
        });
      }
      const count = Math.min(options.batch, options.messages - next);
      const first = next;
      next += count;
      const batch: BenchMessage[] = new Array(count);
      for (let i = 0; i < count; i++) {
        const body = Buffer.from(template);
        body.writeDoubleLE(performance.now(), 0);
        batch[i] = { body, key: options.keys > 0 ? `key-${(first + i) % options.keys}` : undefined };
      }
      await transport.send(batch);
    }
  };
  await Promise.all(Array.from({ length: options.inflight }, lane));
  const produced = performance.now();
  await allReceived;
  const ended = performance.now();
  await transport.close();
  return summarize(options, latencies, started, produced, ended);
}

/** The workload through mqkit: one group, `order` and `concurrency` as given, bytes bodies. */
export async function benchBroker(broker: Broker, options: BenchOptions): Promise<BenchResult> {
  const name = options.topic ?? `bench-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
  const topic = defineTopic(name, { codec: bytesCodec });
  await broker.ensureTopic(topic.name, { partitions: options.partitions });
  const producer = broker.producer({ acks: options.acks });
  let subscription: Subscription | undefined;
  const common = {
    topic,
    group: 'bench',
    order: options.order,
    concurrency: options.concurrency,
    deadLetter: 'discard',
  } as const;
  const pause = () => new Promise((resolve) => setTimeout(resolve, options.handlerMs));
  return runWorkload(options, {
    consume: async (received) => {
      subscription =
        options.batchSize !== undefined && options.batchSize > 0
          ? await broker.subscribe({ ...common, batch: { maxSize: options.batchSize } }, async (ds) => {
              if (options.handlerMs > 0) await pause();
              for (const d of ds) received(d.body as Buffer);
            })
          : await broker.subscribe(common, async (d) => {
              if (options.handlerMs > 0) await pause();
              received(d.body as Buffer);
            });
    },
    send: async (batch) => {
      await producer.sendBatch(
        batch.map(({ body, key }) => (key === undefined ? { topic, body } : { topic, body, key })),
      );
    },
    close: async () => {
      await subscription?.close();
      await producer.close();
    },
  });
}

/** Turns raw timings into a result. */
function summarize(
  options: Pick<BenchOptions, 'label' | 'messages' | 'size'>,
  latencies: Float64Array,
  started: number,
  produced: number,
  ended: number,
): BenchResult {
  const sorted = Float64Array.from(latencies).sort();
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  return {
    label: options.label,
    messages: options.messages,
    size: options.size,
    produceRate: options.messages / ((produced - started) / 1000),
    endToEndRate: options.messages / ((ended - started) / 1000),
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    seconds: (ended - started) / 1000,
  };
}

/** Prints results as an aligned table; with a baseline, adds each row's end-to-end ratio to it. */
export function formatResults(results: readonly BenchResult[], baseline?: BenchResult): string {
  const rows = [
    [
      'run',
      'messages',
      'bytes',
      'produce msg/s',
      'end-to-end msg/s',
      'p50 ms',
      'p99 ms',
      ...(baseline ? ['vs raw'] : []),
    ],
    ...results.map((r) => [
      r.label,
      String(r.messages),
      String(r.size),
      Math.round(r.produceRate).toLocaleString('en-US'),
      Math.round(r.endToEndRate).toLocaleString('en-US'),
      r.p50Ms.toFixed(2),
      r.p99Ms.toFixed(2),
      ...(baseline ? [(r.endToEndRate / baseline.endToEndRate).toFixed(2)] : []),
    ]),
  ];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  return rows
    .map((row) =>
      row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  '),
    )
    .join('\n');
}
