/**
 * Authorization and secrets.
 *
 * - With token auth, an identity that may write staging only cannot change production by any
 *   command: upload, promote, clean, repodata (and validate, which writes staging only).
 * - The real CLI, given a password on the command line, in CONDA_OCI_PASSWORD or in a docker
 *   config, against registries that refuse it (htpasswd and token service): stdout, stderr and the
 *   result file hold no trace of it, as written, base64 (any alignment) or URL-encoded.
 * - The scan that the global teardown runs over the whole suite's output (setup/global.ts) finds
 *   secrets in every form it claims to.
 *
 * Covered elsewhere, not repeated: an expired token is replaced, by the client's clock and after
 * the registry refuses it (registry-auth.test.ts, "an expired token is replaced before use",
 * "a token the registry finds expired is replaced and the request succeeds"); credentials are not
 * sent on a redirect to another origin (registry-auth.test.ts, "a blob GET redirected to another
 * origin carries no Authorization or cookie there"; and realms on other hosts get no credentials).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { silentReporter, type CommandResult } from '../../src/commands/report.js';
import { execute } from '../../src/core/execute.js';
import { RemoteStore } from '../../src/oci/remote/store.js';
import type { CommandInput as CommandOptions } from '../../src/core/commands.js';
import { buildCli, runCli } from '../helpers/cli.js';
import { expectedOf, fixturePath } from '../helpers/fixtures.js';
import { useRegistry } from '../helpers/registry.js';
import { base64Forms, findLeaks, SECRET_MARKER, secretForms, testSecret } from '../helpers/secrets.js';

const CONDA = 'demo-pkg-1.2.3-h1234567_0.conda';
const NEWER = 'demo-pkg-1.2.4-h7654321_1.conda';
const request = (file: string) => {
  const e = expectedOf(file);
  return { subdir: e.subdir, file, sha256: e.sha256 };
};

let work: string;
beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'conda-oci-secrets-'));
  await buildCli();
}, 180_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('a staging-only identity cannot write production by any command', () => {
  const FEEDSTOCK = { username: 'feedstock', password: testSecret('feedstock') };
  const WEBSERVICES = { username: 'webservices', password: testSecret('webservices') };
  const KEY = testSecret('record-key');
  const registry = useRegistry({
    auth: 'token',
    users: [
      { ...FEEDSTOCK, grants: { 'sec/staging/**': ['pull', 'push'] } },
      {
        ...WEBSERVICES,
        grants: {
          'sec/staging/**': ['pull', 'push', 'delete'],
          'sec/prod/**': ['pull', 'push', 'delete'],
          'registry:catalog': ['*'],
        },
      },
    ],
  });
  const staging = () => `oci://${registry.host}/sec/staging`;
  const production = () => `oci://${registry.host}/sec/prod`;
  const run = (options: CommandOptions, who: { username: string; password: string }) =>
    execute({ ...options, ...who }, { reporter: silentReporter });

  /** Every tag of every production repository, with its digest (read as the webservices side). */
  async function productionState(): Promise<Record<string, string>> {
    const store = new RemoteStore({ host: registry.host, plainHttp: true, credentials: WEBSERVICES });
    const state: Record<string, string> = {};
    try {
      for await (const name of store.listRepositories('sec/prod')) {
        const repository = store.repository(name);
        for await (const tag of repository.listTags())
          state[`${name}:${tag}`] = (await repository.resolve(tag))!.digest;
      }
    } finally {
      await store.close();
    }
    return state;
  }

  test('upload, promote, clean and repodata are refused on production; production is unchanged', async () => {
    // Production as the webservices side made it: one package promoted, repodata published.
    await run(
      { command: 'upload', files: [fixturePath(CONDA), fixturePath(NEWER)], to: staging() },
      FEEDSTOCK,
    );
    const validated = await run(
      { command: 'validate', from: staging(), artifacts: [request(CONDA), request(NEWER)], recordKey: KEY },
      WEBSERVICES,
    );
    expect(validated.exitCode).toBe(0);
    await run(
      { command: 'promote', from: staging(), to: production(), artifacts: [request(CONDA)], recordKey: KEY },
      WEBSERVICES,
    );
    expect((await run({ command: 'repodata', channel: production() }, WEBSERVICES)).exitCode).toBe(0);
    const before = await productionState();
    expect(Object.keys(before).length).toBeGreaterThan(5);

    const attempts: [string, CommandOptions][] = [
      ['upload to production', { command: 'upload', files: [fixturePath(NEWER)], to: production() }],
      [
        'promote (a validated artifact)',
        {
          command: 'promote',
          from: staging(),
          to: production(),
          artifacts: [request(NEWER)],
          recordKey: KEY,
        },
      ],
      [
        'promote (the published one again)',
        {
          command: 'promote',
          from: staging(),
          to: production(),
          artifacts: [request(CONDA)],
          recordKey: KEY,
        },
      ],
      ['clean production', { command: 'clean', channel: production(), olderThanMs: 0 }],
      ['repodata of production', { command: 'repodata', channel: production() }],
      ['repodata of one subdir', { command: 'repodata', channel: production(), subdirs: ['linux-64'] }],
    ];
    const outcomes: string[] = [];
    for (const [what, options] of attempts) {
      let result: CommandResult | undefined;
      let thrown: unknown;
      try {
        result = await run(options, FEEDSTOCK);
      } catch (err) {
        thrown = err;
      }
      const text = thrown ? String((thrown as Error).message) : JSON.stringify(result);
      // Refused: an error, or a failed result; never a success that wrote something.
      const refused =
        thrown !== undefined ||
        result!.exitCode !== 0 ||
        result!.artifacts.every((a) => a.status === 'already-published' || a.status === 'failed');
      expect(refused, `${what}: ${text}`).toBe(true);
      expect(findLeaks(text)).toEqual([]);
      outcomes.push(`${what}: ${thrown ? 'error' : `exit ${result!.exitCode}`}`);
    }
    // validate with --production reads production and writes staging only.
    const checked = await run(
      { command: 'validate', from: staging(), production: production(), artifacts: [request(NEWER)] },
      FEEDSTOCK,
    );
    expect(JSON.stringify(checked)).not.toContain(SECRET_MARKER);
    expect(await productionState()).toEqual(before);
    expect(outcomes).toHaveLength(6);
  });
});

describe('the CLI never prints a refused password, wherever it came from', () => {
  // Characters that base64 and URL encoding change, so that every form is different.
  const RIGHT = testSecret('right:p@ss/w+rd=%');
  const WRONG = testSecret('wrong:p@ss/w+rd=%');
  const KEY = testSecret('record-key');
  const basic = useRegistry({ auth: 'htpasswd', users: [{ username: 'alice', password: RIGHT }] });
  const token = useRegistry({ auth: 'token', users: [{ username: 'alice', password: RIGHT }] });

  type Source = 'flag' | 'environment' | 'docker-config';
  const sources: Source[] = ['flag', 'environment', 'docker-config'];

  function credentials(source: Source, host: string): { args: string[]; env: NodeJS.ProcessEnv } {
    if (source === 'flag') return { args: ['--username', 'alice', '--password', WRONG], env: {} };
    if (source === 'environment')
      return { args: [], env: { CONDA_OCI_USERNAME: 'alice', CONDA_OCI_PASSWORD: WRONG } };
    const dir = mkdtempSync(join(work, 'docker-'));
    writeFileSync(
      join(dir, 'config.json'),
      JSON.stringify({ auths: { [host]: { auth: Buffer.from(`alice:${WRONG}`).toString('base64') } } }),
    );
    return { args: [], env: { DOCKER_CONFIG: dir } };
  }

  const commands = (host: string, resultFile: string): [string, string[]][] =>
    [
      ['upload', ['upload', fixturePath(CONDA), '--to', `oci://${host}/leak/staging`]],
      [
        'validate',
        [
          'validate',
          '--from',
          `oci://${host}/leak/staging`,
          '--artifact',
          `linux-64/${CONDA}=${request(CONDA).sha256}`,
        ],
      ],
      [
        'promote',
        [
          'promote',
          '--from',
          `oci://${host}/leak/staging`,
          '--to',
          `oci://${host}/leak/prod`,
          '--artifact',
          `linux-64/${CONDA}=${request(CONDA).sha256}`,
          '--record-key',
          KEY,
        ],
      ],
      ['repodata', ['repodata', '--channel', `oci://${host}/leak/prod`]],
      ['clean', ['clean', '--channel', `oci://${host}/leak/staging`, '--older-than', '1s']],
    ].map(([name, args]) => [name as string, [...(args as string[]), '--json', '--result', resultFile]]);

  test.each(sources)(
    'password from %s: stdout, stderr and the result file hold no trace of it',
    async (source) => {
      const checked: string[] = [];
      for (const [kind, registry] of [
        ['htpasswd', basic],
        ['token', token],
      ] as const) {
        const { args: auth, env } = credentials(source, registry.host);
        // Every command once (password on the command line, htpasswd registry); otherwise the
        // two that carry the most (upload: blobs; promote: two channels and the record key).
        const all = commands(registry.host, join(work, `${source}-${kind}.json`));
        const chosen =
          source === 'flag' && kind === 'htpasswd'
            ? all
            : all.filter(([n]) => n === 'upload' || n === 'promote');
        for (const [name, args] of chosen) {
          const resultFile = args[args.length - 1]!;
          rmSync(resultFile, { force: true });
          const run = await runCli([...args, ...auth], { env });
          let result = '';
          try {
            result = readFileSync(resultFile, 'utf8');
          } catch {
            // no result file: a usage or configuration error (exit 2)
          }
          const text = `${run.stdout}\n${run.stderr}\n${result}`;
          expect(run.code, `${kind} ${name}: ${run.stderr}`).not.toBe(0);
          // It did meet the registry's refusal (not a usage error before any request).
          expect(text, `${kind} ${name}`).toMatch(/401|refused|unauthorized|credentials/i);
          expect(findLeaks(text, [WRONG, KEY]), `${kind} ${name}`).toEqual([]);
          for (const form of [...secretForms(WRONG), ...base64Forms(`alice:${WRONG}`)])
            expect(text.includes(form), `${kind} ${name}: a form of the password`).toBe(false);
          checked.push(`${kind} ${name}`);
        }
      }
      expect(checked).toHaveLength(source === 'flag' ? 7 : 4);
    },
  );
});

describe('the suite-wide scan', () => {
  test('finds a secret as written, URL-encoded, JSON-escaped and base64 at any offset', () => {
    const secret = testSecret('p@ss/w+rd="x"');
    const carriers = [
      `plain ${secret} text`,
      `url ?password=${encodeURIComponent(secret)}&x`,
      `json ${JSON.stringify({ password: secret })}`,
      ...[0, 1, 2].map((pad) => `basic ${Buffer.from(`${'u'.repeat(pad)}:${secret}`).toString('base64')}`),
      `docker auth ${Buffer.from(`alice:${secret}`).toString('base64url')}`,
    ];
    for (const carrier of carriers) expect(findLeaks(carrier).length, carrier).toBeGreaterThan(0);
    expect(findLeaks('no secret here, not even eHg3U2VjcmV0')).toEqual([]);
    const token = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLW9mLWEtdGVzdC10b2tlbg';
    expect(findLeaks(`Authorization: Bearer ${token}`, [token])).toHaveLength(1);
  });
});
