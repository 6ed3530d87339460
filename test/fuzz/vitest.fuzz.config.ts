import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

/**
 * The full fuzz run, `npm run test:fuzz`: every file under test/fuzz with MQKIT_FUZZ_RUNS=2000
 * (over 10,000 cases in all; `npm test` runs the same files with the default 200). Files run one
 * after another so the brokers' cases do not compete for the machine.
 */
export default defineConfig({
  test: {
    root: fileURLToPath(new URL('../..', import.meta.url)),
    include: ['test/fuzz/**/*.test.ts'],
    globalSetup: ['test/infra/global-setup.ts'],
    env: {
      MQKIT_FUZZ_RUNS: process.env.MQKIT_FUZZ_RUNS ?? '2000',
      MQKIT_FUZZ_TIME_LIMIT_MS: process.env.MQKIT_FUZZ_TIME_LIMIT_MS ?? '300000',
    },
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
  },
});
