import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

/**
 * Runs only the infrastructure self-test against real servers:
 *   npx vitest run --config test/infra/vitest.infra.config.ts
 */
export default defineConfig({
  test: {
    root: fileURLToPath(new URL('../..', import.meta.url)),
    include: ['test/infra/**/*.test.ts'],
    globalSetup: ['test/infra/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
