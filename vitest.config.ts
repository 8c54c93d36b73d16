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
    // The secret scan of issue 7: tee all output, fail the run if a test secret shows up in it.
    globalSetup: ['__tests__/setup/global.ts'],
    setupFiles: ['__tests__/setup/tee-output.ts'],
  },
});
