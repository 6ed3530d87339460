import { environment, ratioOf, type SelectionReport } from '../../src/cli/bench/select.js';
import { workloadDefaults } from '../../src/cli/bench/workload.js';
import type { BenchResult } from '../../src/cli/bench.js';

/** A report with made-up figures, for rendering. */
export function sampleReport(): SelectionReport {
  const result = (label: string, library: string, broker: string, rate: number): BenchResult => ({
    label,
    library,
    broker,
    workload: 'small-fast',
    size: 100,
    sent: 1000,
    refused: library === 'peer' ? 10 : 0,
    ...(library === 'peer' ? { sendError: 'Write buffer <is> full' } : {}),
    received: 1000,
    lost: 0,
    duplicated: 0,
    outOfOrder: 0,
    produceRate: rate * 1.1,
    produceMBps: (rate * 110) / 1048576,
    endToEndRate: rate,
    endToEndMBps: (rate * 100) / 1048576,
    endToEnd: { count: 1000, p50: 2, p95: 4, p99: 8, p999: 9, max: 10 },
    publish: { count: 1000, p50: 1, p95: 2, p99: 3, p999: 4, max: 5 },
    cpuUsPerMessage: 20,
    peakRssMB: 120,
    seconds: 1,
  });
  const kafka = [
    result('mqkit kafka', 'mqkit', 'kafka', 50_000),
    result('raw kafkajs', 'raw kafkajs', 'kafka', 55_000),
  ];
  const rabbit = [
    result('mqkit rabbitmq', 'mqkit', 'rabbitmq', 20_000),
    result('raw amqplib', 'raw amqplib', 'rabbitmq', 19_000),
    result('peer </script>', 'peer', 'rabbitmq', 5_000),
  ];
  return {
    workload: { ...workloadDefaults, name: 'small-fast' },
    environment: environment('0.0.0-test'),
    notes: [],
    failures: [],
    brokers: [
      {
        url: 'kafka://127.0.0.1:9092',
        broker: 'kafka',
        results: kafka,
        ratio: ratioOf('kafka', kafka[0]!, kafka[1]!),
      },
      {
        url: 'amqp://guest:***@127.0.0.1:5672',
        broker: 'rabbitmq',
        version: '4.1.0',
        results: rabbit,
        ratio: ratioOf('rabbitmq', rabbit[0]!, rabbit[1]!),
      },
    ],
  };
}
