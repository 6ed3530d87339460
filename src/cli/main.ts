#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { connect, redact } from '../connect.js';
import type { Acks } from '../core/broker.js';
import { isMqError } from '../core/errors.js';
import { benchBroker, benchDefaults, formatResults } from './bench.js';
import { formatDemo, runDemo } from './demo.js';

const usage = `mqkit <command> [options]

Commands:
  demo    the order scenario: an order service and stock, coupon and points consumers
          --orders N (default 10000)
  bench   produce and consume through mqkit; prints throughput and p50/p99 latency
          --messages N (default ${benchDefaults.messages})  --size BYTES (default ${benchDefaults.size})
          --acks all|leader|none  --partitions N  --batch N  --inflight N  --concurrency N
          --max-lag N (producers wait while this many are unhandled; default ${benchDefaults.maxLag})
  lag     backlog of a group on a topic, per partition
          --topic NAME --group NAME
          --management URL (RabbitMQ: also count unacked deliveries, e.g. http://127.0.0.1:15672)

Every command takes --url (default: $MQ_URL, else memory://).`;

async function main(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      url: { type: 'string' },
      orders: { type: 'string' },
      messages: { type: 'string' },
      size: { type: 'string' },
      acks: { type: 'string' },
      partitions: { type: 'string' },
      batch: { type: 'string' },
      inflight: { type: 'string' },
      concurrency: { type: 'string' },
      'max-lag': { type: 'string' },
      topic: { type: 'string' },
      group: { type: 'string' },
      management: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const command = positionals[0];
  if (values.help || command === undefined || !['demo', 'bench', 'lag'].includes(command)) {
    process.stdout.write(`${usage}\n`);
    return values.help ? 0 : 2;
  }
  const url = values.url ?? process.env.MQ_URL ?? 'memory://';
  const broker = await connect(
    url,
    values.management === undefined ? undefined : { rabbitmq: { managementUrl: values.management } },
  );
  try {
    if (command === 'demo') {
      const summary = await runDemo(broker, redact(url), intOption(values.orders, 'orders', 10_000));
      process.stdout.write(`${formatDemo(summary)}\n`);
    } else if (command === 'bench') {
      const options = {
        ...benchDefaults,
        label: `mqkit ${broker.kind}`,
        messages: intOption(values.messages, 'messages', benchDefaults.messages),
        size: intOption(values.size, 'size', benchDefaults.size),
        acks: (values.acks ?? benchDefaults.acks) as Acks,
        partitions: intOption(values.partitions, 'partitions', benchDefaults.partitions),
        batch: intOption(values.batch, 'batch', benchDefaults.batch),
        inflight: intOption(values.inflight, 'inflight', benchDefaults.inflight),
        concurrency: intOption(values.concurrency, 'concurrency', benchDefaults.concurrency),
        maxLag: intOption(values['max-lag'], 'max-lag', benchDefaults.maxLag),
      };
      process.stdout.write(`${formatResults([await benchBroker(broker, options)])}\n`);
    } else {
      if (!values.topic || !values.group) throw new Error('lag needs --topic and --group');
      const backlog = await broker.backlog(values.topic, values.group);
      for (const p of backlog.partitions)
        process.stdout.write(
          `partition ${p.partition}  backlog ${p.backlog}${p.inFlight === undefined ? '' : `  (in flight ${p.inFlight})`}\n`,
        );
      process.stdout.write(`total ${backlog.total}\n`);
    }
  } finally {
    await broker.close();
  }
  return 0;
}

function intOption(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value.replace(/_/g, ''));
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer (got ${value})`);
  return n;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    const code = isMqError(error) ? ` [${error.code}]` : '';
    process.stderr.write(`mqkit: ${error instanceof Error ? error.message : String(error)}${code}\n`);
    process.exit(1);
  },
);
