import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['__tests__/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Registry-backed suites start their own registry on a free loopback port; two cores.
    maxWorkers: 2,
    pool: 'forks',
    reporters: ['default'],
  },
});
