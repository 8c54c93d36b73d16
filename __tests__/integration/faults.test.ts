/**
 * Fault injection: a seeded schedule of network and server faults between the
 * client and a real registry (distribution 2.8), while 100 packages are uploaded, 50 are validated
 * and promoted, and repodata is rebuilt 5 times. Every run ends in success or in a clear error;
 * what failed is simply run again; and a final check without the proxy finds every package
 * byte-identical to its file and every tag on a complete manifest.
 *
 * Faults: connection resets mid-body (request and response side), stalls that only a timeout
 * ends, 500/502/503, 429 with and without Retry-After, GHCR's 429 whose wait is only in the
 * message, responses cut short, corrupted bodies, and requests that reach the registry twice.
 * Waits are shortened (a small retry policy and a capped `sleep`), so the suite takes seconds.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { silentReporter, type ArtifactResult, type CommandResult } from '../../src/commands/report.js';
import { execute, type Environment } from '../../src/core/execute.js';
import { digestOf, type Digest } from '../../src/oci/digest.js';
import { encodeManifest } from '../../src/oci/manifest.js';
import { EMPTY_JSON_BYTES, EMPTY_JSON_DIGEST, MEDIA_TYPE_OCI_MANIFEST } from '../../src/oci/media-types.js';
import { parseChannel } from '../../src/conda/channel.js';
import { RemoteStore, type RemoteStoreOptions } from '../../src/oci/remote/store.js';
import type { CommandInput as CommandOptions } from '../../src/core/commands.js';
import { makePackages, pseudoRandom, type MadePackage } from '../helpers/packages.js';
import { actions, seededRandom, startProxy, type ProxyAction, type TestProxy } from '../helpers/proxy.js';
import { useRegistry } from '../helpers/registry.js';
import { checkComplete, checkPackages, latestRepodataFiles } from '../helpers/verify.js';

const registry = useRegistry();
const KEY = 'record-key-of-the-fault-suite';

/** The faults the schedule picks from, uniformly. */
const FAULTS: [kind: string, action: ProxyAction][] = [
  ['reset mid request body', actions.reset('request', 97)],
  ['reset mid response body', actions.reset('response', 41)],
  ['reset before the answer', actions.reset('response', 0)],
  ['stall request (until the client times out)', actions.stall('request', 13)],
  ['stall response (until the client times out)', actions.stall('response', 29)],
  ['500', actions.status(500)],
  ['502', actions.status(502)],
  ['503', actions.status(503)],
  ['503 with Retry-After: 1', actions.status(503, undefined, { 'retry-after': '1' })],
  ['429 without Retry-After', actions.tooManyRequests()],
  ['429 with Retry-After: 1', actions.tooManyRequests(1)],
  ['429 GHCR-style (retry-after: 40ms in the message)', actions.ghcrTooManyRequests(40)],
  ['response cut short', actions.truncate(17)],
  ['corrupted response body', actions.corrupt(0)],
  ['duplicated request (client gets the 2nd answer)', actions.duplicate('second')],
  ['duplicated request (client gets the 1st answer)', actions.duplicate('first')],
];

interface Tally {
  faults: Map<string, number>;
  retries: number;
  runs: { kind: string; ok: number; clear: number; reruns: number }[];
}

const tally: Tally = { faults: new Map(), retries: 0, runs: [] };

let proxy: TestProxy;
let work: string;
let packages: MadePackage[];

beforeAll(async () => {
  proxy = await startProxy(registry.url);
  work = mkdtempSync(join(tmpdir(), 'conda-oci-faults-'));
  packages = await makePackages(join(work, 'build'), 100, { prefix: 'fault' });
});

afterAll(async () => {
  await proxy?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Turns the seeded schedule on (every /v2/ request after the ping may get a fault). */
function chaos(seed: number, probability: number) {
  const random = seededRandom(seed);
  return proxy.on({ path: /^\/v2\/.+/ }, () => {
    const roll = random();
    const pick = random();
    if (roll >= probability) return undefined;
    const [kind, action] = FAULTS[Math.floor(pick * FAULTS.length)]!;
    tally.faults.set(kind, (tally.faults.get(kind) ?? 0) + 1);
    return action;
  });
}

/** Small retry policy and capped waits: faults cost milliseconds, not minutes. */
function environment(extra: Partial<NonNullable<Environment['storeOptions']>> = {}): Environment {
  return {
    reporter: silentReporter,
    storeOptions: {
      retry: { attempts: 8, baseDelayMs: 2, maxDelayMs: 20, maxRetryAfterMs: 5000 },
      sleep: async (ms) => {
        tally.retries++;
        await delay(Math.min(ms, 25));
      },
      bodyTimeoutMs: 300,
      headersTimeoutMs: 300,
      ...extra,
    },
  };
}

const viaProxy = (path: string) => `oci://${proxy.host}/${path}`;
const direct = (path: string) => `oci://${registry.host}/${path}`;

/**
 * A clear error names what failed in words: no bare JavaScript error, no `undefined`, no
 * `[object Object]`.
 */
function isClear(error: string | undefined): boolean {
  return (
    typeof error === 'string' &&
    // where: a URL, a host:port/repository reference, or a package file
    /https?:\/\/|\d+\.\d+\.\d+\.\d+:\d+\/|\.conda\b|\.tar\.bz2\b/.test(error) &&
    !/TypeError|ReferenceError|RangeError|Cannot read prop|is not a function|undefined|\[object Object\]/.test(
      error,
    )
  );
}

const SUCCESS = new Set(['uploaded', 'exists', 'passed', 'promoted', 'already-published']);

/** Splits a result into successes and failures; every failure must be clear. */
function outcome(result: CommandResult): { ok: ArtifactResult[]; failed: ArtifactResult[] } {
  const ok = result.artifacts.filter((a) => SUCCESS.has(a.status));
  const failed = result.artifacts.filter((a) => !SUCCESS.has(a.status));
  for (const a of failed) {
    expect(a.status, `${a.file}`).toBe('failed');
    expect(isClear(a.error), `unclear error for ${a.file}: ${a.error}`).toBe(true);
  }
  return { ok, failed };
}

function record(kind: string, ok: number, clear: number, reruns = 0): void {
  const entry = tally.runs.find((r) => r.kind === kind);
  if (entry) {
    entry.ok += ok;
    entry.clear += clear;
    entry.reruns += reruns;
  } else tally.runs.push({ kind, ok, clear, reruns });
}

async function run(options: CommandOptions, env = environment()): Promise<CommandResult> {
  return execute(options, env);
}

describe('through a faulty network and registry', () => {
  const staging = 'faults/staging';
  const production = 'faults/prod';

  test(
    '100 uploads: each succeeds or fails clearly; the failed ones succeed when run again',
    { timeout: 120_000 },
    async () => {
      const rule = chaos(7, 0.1);
      const failedFiles: MadePackage[] = [];
      const batch = async (index: number): Promise<void> => {
        const files = packages.slice(index * 10, index * 10 + 10);
        // Half the batches go in small PATCH chunks, so chunked sessions meet the faults too.
        const env = index % 2 ? environment({ monolithicLimit: 2048, chunkSize: 1024 }) : environment();
        const result = await run(
          { command: 'upload', files: files.map((p) => p.path), to: viaProxy(staging), concurrency: 4 },
          env,
        );
        const { ok, failed } = outcome(result);
        record('upload', ok.length, failed.length);
        failedFiles.push(...files.filter((p) => failed.some((f) => f.file === p.file)));
      };
      // Two uploads at a time (ten packages each), as parallel CI jobs of one feedstock would.
      for (let index = 0; index < 10; index += 2) await Promise.all([batch(index), batch(index + 1)]);
      rule.remove();
      if (failedFiles.length > 0) {
        const again = await run({
          command: 'upload',
          files: failedFiles.map((p) => p.path),
          to: viaProxy(staging),
        });
        expect(outcome(again).failed).toEqual([]);
        record('upload', 0, 0, failedFiles.length);
      }
    },
  );

  test(
    '50 validations and promotions, with a repodata run after each 10 (5 runs)',
    { timeout: 120_000 },
    async () => {
      const chosen = packages.slice(0, 50);
      const cacheDir = join(work, 'repodata-cache');
      const promoted: MadePackage[] = [];
      for (let round = 0; round < 5; round++) {
        const group = chosen.slice(round * 10, round * 10 + 10);
        const artifacts = group.map((p) => ({ subdir: p.subdir, file: p.file, sha256: p.sha256 }));
        const rule = chaos(100 + round, 0.1);
        const validated = await run({
          command: 'validate',
          from: viaProxy(staging),
          artifacts,
          recordKey: KEY,
          concurrency: 4,
        });
        const v = outcome(validated);
        record('validate', v.ok.length, v.failed.length);
        const passed = artifacts.filter((a) => v.ok.some((r) => r.file === a.file));
        const promotedNow = await run({
          command: 'promote',
          from: viaProxy(staging),
          to: viaProxy(production),
          artifacts: passed,
          recordKey: KEY,
          concurrency: 4,
        });
        const p = outcome(promotedNow);
        record('promote', p.ok.length, p.failed.length);
        rule.remove();

        // What failed is run again (no faults): validate, then promote.
        const left = artifacts.filter((a) => !p.ok.some((r) => r.file === a.file));
        if (left.length > 0) {
          const revalidated = await run({
            command: 'validate',
            from: viaProxy(staging),
            artifacts: left,
            recordKey: KEY,
          });
          expect(outcome(revalidated).failed).toEqual([]);
          const repromoted = await run({
            command: 'promote',
            from: viaProxy(staging),
            to: viaProxy(production),
            artifacts: left,
            recordKey: KEY,
          });
          expect(outcome(repromoted).failed).toEqual([]);
          record('promote', 0, 0, left.length);
        }
        promoted.push(...group);

        // A repodata run through the faults: every subdir it publishes is complete.
        const indexRule = chaos(200 + round, 0.1);
        const indexed = await run({
          command: 'repodata',
          channel: viaProxy(production),
          cacheDir,
          concurrency: 4,
        });
        indexRule.remove();
        const r = outcome(indexed);
        record('repodata runs', r.failed.length ? 0 : 1, r.failed.length ? 1 : 0);
        record('repodata documents', r.ok.length, r.failed.length);
        const store = new RemoteStore({ host: registry.host, plainHttp: true });
        try {
          const channel = parseChannel(direct(production));
          for (const subdir of ['linux-64', 'noarch']) {
            const files = await latestRepodataFiles(store, channel, subdir);
            const expected = promoted
              .filter((p) => p.subdir === subdir)
              .map((p) => p.file)
              .sort();
            const published = r.ok.some((a) => a.subdir === subdir && a.file === 'repodata.json');
            if (published) expect(files, `${subdir} after round ${round}`).toEqual(expected);
            // Whatever `latest` holds is a complete document of some earlier state, never partial.
            else if (files) expect(expected).toEqual(expect.arrayContaining(files));
          }
        } finally {
          await store.close();
        }
        if (r.failed.length > 0) {
          const again = await run({ command: 'repodata', channel: viaProxy(production), cacheDir });
          expect(outcome(again).failed).toEqual([]);
          record('repodata runs', 0, 0, 1);
          record('repodata documents', 0, 0, r.failed.length);
        }
      }
    },
  );

  test('final check without the proxy: everything byte-identical, every tag complete', async () => {
    const store = new RemoteStore({ host: registry.host, plainHttp: true });
    try {
      expect(await checkPackages(store, parseChannel(direct(staging)), packages)).toEqual([]);
      expect(await checkPackages(store, parseChannel(direct(production)), packages.slice(0, 50))).toEqual([]);
      const stagingState = await checkComplete(store, staging);
      const productionState = await checkComplete(store, production);
      expect(stagingState.problems).toEqual([]);
      expect(productionState.problems).toEqual([]);
      // Repodata without faults agrees with what the faulty runs left.
      const final = await run({ command: 'repodata', channel: direct(production) });
      expect(final.artifacts.filter((a) => a.status === 'failed')).toEqual([]);
      expect(final.artifacts.every((a) => a.status === 'exists')).toBe(true);

      const injected = [...tally.faults.values()].reduce((a, b) => a + b, 0);
      const lines = [
        `fault injection: ${injected} faults injected over ${proxy.records.length} requests, ${tally.retries} retries (waits)`,
        ...[...tally.faults]
          .sort((a, b) => b[1] - a[1])
          .map(([kind, n]) => `  ${String(n).padStart(4)}  ${kind}`),
        ...tally.runs.map(
          (r) =>
            `  ${r.kind}: ${r.ok} succeeded through the faults, ${r.clear} failed with a clear error, ${r.reruns} run again and succeeded`,
        ),
        `  final check: ${stagingState.tags + productionState.tags} tags in ${stagingState.repositories + productionState.repositories} repositories, ${stagingState.blobs + productionState.blobs} blob references, all complete; ${packages.length} staged and 50 promoted packages byte-identical`,
      ];
      console.log(lines.join('\n'));
      expect(injected).toBeGreaterThan(100);
      for (const [kind] of FAULTS) expect(tally.faults.get(kind) ?? 0, kind).toBeGreaterThan(0);
    } finally {
      await store.close();
    }
  });
});

describe('regressions the fault schedule found (one fault each, deterministic)', () => {
  const fastRetry = { attempts: 3, baseDelayMs: 1, maxDelayMs: 5, maxRetryAfterMs: 1000 };
  let n = 0;
  const fresh = (size: number): { bytes: Buffer; descriptor: { digest: Digest; size: number } } => {
    const bytes = Buffer.from(pseudoRandom(`regression-${n++}`, size));
    return { bytes, descriptor: { digest: digestOf(bytes), size } };
  };
  const through = (options: Partial<RemoteStoreOptions> = {}) =>
    new RemoteStore({ host: proxy.host, plainHttp: true, retry: fastRetry, ...options });
  const directStore = () => new RemoteStore({ host: registry.host, plainHttp: true });

  afterAll(() => proxy.clearRules());

  test('a closing PUT that reached the registry twice (answer: 404 BLOB_UPLOAD_UNKNOWN) still stores the blob', async () => {
    const { bytes, descriptor } = fresh(3000);
    proxy.on({ method: 'PUT', path: /\/blobs\/uploads\// }, actions.duplicate('second'), { times: 1 });
    const store = through();
    try {
      const outcome = await store.repository('regress/dup-put').pushBlob(descriptor, bytes);
      expect(outcome.action).toBe('uploaded');
      expect(await directStore().repository('regress/dup-put').statBlob(descriptor.digest)).toEqual({
        size: 3000,
      });
    } finally {
      await store.close();
    }
  });

  test('a PATCH that reached the registry twice (answer: BLOB_UPLOAD_INVALID) ends in a new session and a correct blob', async () => {
    const { bytes, descriptor } = fresh(5000);
    proxy.on({ method: 'PATCH' }, actions.duplicate('second'), { times: 1, skip: 1 });
    const store = through({ monolithicLimit: 1024, chunkSize: 1024 });
    try {
      await store.repository('regress/dup-patch').pushBlob(descriptor, bytes);
      const read = await directStore()
        .repository('regress/dup-patch')
        .readBlob(descriptor, 1 << 20);
      expect(Buffer.from(read).equals(bytes)).toBe(true);
    } finally {
      await store.close();
    }
  });

  test('a chunked upload that keeps moving is not given up after `attempts` failures in all', async () => {
    const { bytes, descriptor } = fresh(12 * 1024);
    let patches = 0;
    // Every other PATCH fails: 6 failures with attempts = 3, but each after progress.
    proxy.on({ method: 'PATCH' }, () => (++patches % 2 === 0 ? actions.status(503) : undefined));
    const store = through({ monolithicLimit: 1024, chunkSize: 1024 });
    try {
      await store.repository('regress/progress').pushBlob(descriptor, bytes);
      expect(patches).toBeGreaterThan(12);
    } finally {
      proxy.clearRules();
      await store.close();
    }
  });

  test('a download that keeps moving is not given up after `attempts` failures in all', async () => {
    const { bytes, descriptor } = fresh(64 * 1024);
    const setup = directStore();
    await setup.repository('regress/download').pushBlob(descriptor, bytes);
    await setup.close();
    // The first 6 GETs break off after 5000 bytes each; attempts = 3.
    proxy.on({ method: 'GET', path: /\/blobs\/sha256:/ }, actions.reset('response', 5000), { times: 6 });
    const store = through();
    try {
      const read = await store.repository('regress/download').readBlob(descriptor, 1 << 20);
      expect(Buffer.from(read).equals(bytes)).toBe(true);
    } finally {
      proxy.clearRules();
      await store.close();
    }
  });

  test('a tag list whose answer breaks off mid-body is asked for again', async () => {
    const setup = directStore();
    const repository = setup.repository('regress/tags');
    const { bytes, descriptor } = fresh(10);
    await repository.pushBlob(descriptor, bytes);
    const manifest = encodeManifest({
      schemaVersion: 2,
      mediaType: MEDIA_TYPE_OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: descriptor.digest, size: 10 },
      layers: [],
    });
    await repository.pushBlob({ digest: EMPTY_JSON_DIGEST, size: EMPTY_JSON_BYTES.length }, EMPTY_JSON_BYTES);
    for (const tag of ['a', 'b', 'c']) await repository.pushManifest(manifest, tag);
    await setup.close();
    proxy.on({ method: 'GET', path: /\/tags\/list/ }, actions.reset('response', 8), { times: 1 });
    const store = through();
    try {
      const tags: string[] = [];
      for await (const tag of store.repository('regress/tags').listTags()) tags.push(tag);
      expect(tags.sort()).toEqual(['a', 'b', 'c']);
    } finally {
      await store.close();
    }
  });

  test('a network failure that outlasts the retries names the request', async () => {
    proxy.on({ method: 'GET', path: /\/tags\/list/ }, actions.reset('response', 8));
    const store = through();
    try {
      const error = await (async () => {
        for await (const _ of store.repository('regress/tags').listTags()) void _;
      })().catch((err: unknown) => err);
      expect(String((error as Error).message)).toMatch(
        /^GET http:\/\/127\.0\.0\.1:\d+\/v2\/regress\/tags\/tags\/list: .+ \(3 attempts\)$/,
      );
    } finally {
      proxy.clearRules();
      await store.close();
    }
  });

  test('a manifest PUT refused with 400 DIGEST_INVALID while another writer is at it is sent again', async () => {
    const setup = directStore();
    const repository = setup.repository('regress/race');
    const { bytes, descriptor } = fresh(10);
    await repository.pushBlob(descriptor, bytes);
    await repository.pushBlob({ digest: EMPTY_JSON_DIGEST, size: EMPTY_JSON_BYTES.length }, EMPTY_JSON_BYTES);
    await setup.close();
    const manifest = encodeManifest({
      schemaVersion: 2,
      mediaType: MEDIA_TYPE_OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: descriptor.digest, size: 10 },
      layers: [],
    });
    proxy.on(
      { method: 'PUT', path: /\/manifests\// },
      actions.status(400, {
        errors: [{ code: 'DIGEST_INVALID', message: 'provided digest did not match uploaded content' }],
      }),
      { times: 1 },
    );
    const store = through();
    try {
      const pushed = await store.repository('regress/race').pushManifest(manifest, 'v1');
      expect(pushed.descriptor.digest).toBe(digestOf(manifest.bytes));
    } finally {
      await store.close();
    }
  });

  test('validate: bytes altered on the way are reported as such, not blamed on the package', async () => {
    const pkg = packages[99]!;
    proxy.on({ method: 'GET', path: new RegExp(`/blobs/sha256:${pkg.sha256}`) }, actions.corrupt(0), {
      times: 1,
    });
    const result = await run({
      command: 'validate',
      from: viaProxy('faults/staging'),
      artifacts: [{ subdir: pkg.subdir, file: pkg.file, sha256: pkg.sha256 }],
    });
    const check = result.artifacts[0]!.checks!.find((c) => c.name === 'package-bytes')!;
    expect(check.ok).toBe(false);
    expect(check.detail).toMatch(/the registry served other bytes than sha256:/);
  });
});
