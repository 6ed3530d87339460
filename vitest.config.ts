import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (path: string) => fileURLToPath(new URL(`./src/${path}`, import.meta.url));

export default defineConfig({
  // Tests written as a user or a third-party adapter would write them import the package by name.
  resolve: {
    alias: [
      { find: /^mqkit$/, replacement: src('index.ts') },
      { find: /^mqkit\/adapter$/, replacement: src('adapter.ts') },
      { find: /^mqkit\/otel$/, replacement: src('otel/index.ts') },
      { find: /^mqkit\/testing$/, replacement: src('testing/index.ts') },
      { find: /^mqkit\/testing\/conformance$/, replacement: src('testing/conformance.ts') },
    ],
  },
  test: {
    include: ['test/**/*.test.ts'],
    // Starts (or reuses) Kafka, RabbitMQ, PostgreSQL and Redis and provides their URLs to tests.
    globalSetup: ['test/infra/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
  },
});
