import { defineConfig } from 'vitest/config';

/** What both projects share (they do not extend the root, so the global setup runs once). */
const shared = {
  testTimeout: 60_000,
  hookTimeout: 60_000,
  pool: 'forks' as const,
  // Every worker's output is teed for the secret scan (see setup/global.ts).
  setupFiles: ['__tests__/setup/tee-output.ts'],
};

export default defineConfig({
  test: {
    // Registry-backed suites start their own registry on a free loopback port; two cores.
    maxWorkers: 2,
    reporters: ['default'],
    // The suite-wide secret scan: tee all output, fail the run if a test secret shows up in it.
    globalSetup: ['__tests__/setup/global.ts'],
    projects: [
      // Pure modules and on-disk channels: Node alone, no registry, no apt package.
      { test: { ...shared, name: 'unit', include: ['__tests__/unit/**/*.test.ts'] } },
      // A real registry (docker-registry), skopeo, cph, zstd, the bundled CLI in child processes.
      { test: { ...shared, name: 'integration', include: ['__tests__/integration/**/*.test.ts'] } },
    ],
  },
});
