/**
 * One case of limits-memory.test.ts, in a process of its own (a huge count may exhaust the
 * heap): connects to the embedded broker with one numeric setting at `n`, subscribes, sends one
 * message and waits for it, then prints one JSON line saying how that went.
 */

import { silentLogger } from '../../src/core/logger.js';
import { connect, MqError } from '../../src/index.js';
import { waitFor } from '../../src/testing/index.js';

const { where, n } = JSON.parse(process.argv[2] ?? '{}') as { where: string; n: number };
const name = `limits-${process.pid}`;

try {
  const query = where === 'url' ? `?partitions=${n}` : where === 'url-retention' ? `?retention=${n}` : '';
  const memory = where === 'option' ? { partitions: n } : where === 'retention' ? { retention: n } : {};
  const broker = await connect(`memory://${name}${query}`, { logger: silentLogger, memory });
  if (where === 'ensureTopic') await broker.ensureTopic('t', { partitions: n });
  let got = 0;
  await broker.subscribe(
    {
      topic: 't',
      group: 'g',
      concurrency: where === 'concurrency' ? n : 1,
      retry:
        where === 'attempts' ? { attempts: n } : where === 'multiplier' ? { backoff: { multiplier: n } } : {},
    },
    () => {
      got++;
    },
  );
  await broker.producer().send({ topic: 't', key: 'k', body: 1 });
  await waitFor(() => got > 0, { timeoutMs: 10_000 });
  await broker.close();
  console.log(JSON.stringify({ ok: true }));
} catch (error) {
  const mq = error instanceof MqError;
  console.log(
    JSON.stringify({
      ok: false,
      mq,
      code: mq ? error.code : undefined,
      error: `${(error as Error)?.constructor?.name}: ${(error as Error)?.message}`,
    }),
  );
}
