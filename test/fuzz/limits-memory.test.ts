import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { afterAll, describe, it } from 'vitest';
import { CODES, checkProperty, runs, summary } from './harness.js';

// Huge counts on the embedded broker (partitions in the URL, the options and ensureTopic;
// concurrency, attempts, multiplier, retention): each case runs in a child process with a
// 256 MB heap, so a case that exhausts memory fails this test instead of killing the run.
// The shared brokers are never asked for such counts.
const child = fileURLToPath(new URL('./limits-child.ts', import.meta.url));
const CHILD_BOUND_MS = 20_000;

function runChild(input: {
  where: string;
  n: number;
}): Promise<{ code: number | null; signal: string | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(
      process.execPath,
      ['--max-old-space-size=256', '--import', 'tsx', child, JSON.stringify(input)],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => {
      out += String(d);
    });
    p.stderr.on('data', (d) => {
      err += String(d);
    });
    const timer = setTimeout(() => p.kill('SIGKILL'), CHILD_BOUND_MS);
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, out, err });
    });
  });
}

describe('fuzz memory: huge counts', () => {
  afterAll(() => {
    console.log(summary('memory limits'));
  });

  it(
    'a huge count is refused with an MqError or works; it never exhausts the heap or hangs',
    async () => {
      const arb = fc.record({
        where: fc.constantFrom(
          'url',
          'url-retention',
          'option',
          'retention',
          'ensureTopic',
          'concurrency',
          'attempts',
          'multiplier',
        ),
        n: fc.oneof(
          fc.constantFrom(1e5, 1e6, 1e7, 1e9, 2 ** 31 - 1, 2 ** 31, 2 ** 32, Number.MAX_SAFE_INTEGER, 1e308),
          fc.integer({ min: 100_000, max: 2 ** 31 }),
        ),
      });
      await checkProperty(
        'limits',
        arb,
        async (input) => {
          const r = await runChild(input);
          const line = r.out.trim().split('\n').pop() ?? '';
          if (r.code !== 0 || line === '')
            throw new Error(
              `the process died (exit ${r.code}, signal ${r.signal}${r.signal === 'SIGKILL' ? `, killed after ${CHILD_BOUND_MS} ms` : ''}): ${r.err.trim().split('\n').slice(-3).join(' | ').slice(0, 400)}`,
            );
          const result = JSON.parse(line) as { ok: boolean; mq?: boolean; code?: string; error?: string };
          if (!result.ok && !(result.mq && result.code !== undefined && CODES.has(result.code)))
            throw new Error(`failed with a non-MqError: ${result.error}`);
        },
        runs(0.02),
        Number(process.env.MQKIT_FUZZ_TIME_LIMIT_MS ?? 90_000),
      );
    },
    Number(process.env.MQKIT_FUZZ_TIME_LIMIT_MS ?? 90_000) + 60_000,
  );
});
