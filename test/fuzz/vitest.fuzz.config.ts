import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

/**
 * The full fuzz run, `npm run test:fuzz`: every file under test/fuzz with MQKIT_FUZZ_RUNS=2000
 * (over 10,000 cases in all; `npm test` runs the same files with the default 200). Files run one
 * after another so the brokers' cases do not compete for the machine.
 *
 * Strict (MQKIT_FUZZ_STRICT=1): a property its time limit cut off fails, and at the end
 * test/fuzz/fuzz-total.ts prints the total over all files and fails the run below 10,000 cases
 * (MQKIT_FUZZ_TARGET; only with the default MQKIT_FUZZ_RUNS, as fewer runs plan fewer cases).
 */
const tallyFile = join(tmpdir(), `mqkit-fuzz-tally-${process.pid}.jsonl`);
process.env.MQKIT_FUZZ_TALLY_FILE = tallyFile;
process.env.MQKIT_FUZZ_STRICT ??= '1';
process.env.MQKIT_FUZZ_TARGET ??= process.env.MQKIT_FUZZ_RUNS === undefined ? '10000' : '0';

export default defineConfig({
  test: {
    root: fileURLToPath(new URL('../..', import.meta.url)),
    include: ['test/fuzz/**/*.test.ts'],
    globalSetup: ['test/infra/global-setup.ts', 'test/fuzz/fuzz-total.ts'],
    env: {
      MQKIT_FUZZ_RUNS: process.env.MQKIT_FUZZ_RUNS ?? '2000',
      MQKIT_FUZZ_TIME_LIMIT_MS: process.env.MQKIT_FUZZ_TIME_LIMIT_MS ?? '300000',
      MQKIT_FUZZ_STRICT: process.env.MQKIT_FUZZ_STRICT,
      MQKIT_FUZZ_TALLY_FILE: tallyFile,
    },
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
  },
});
