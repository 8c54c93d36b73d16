/**
 * The action's glue: `readInputs()` from `INPUT_*` variables and the event payload, and
 * `run(inputs, deps)` end to end against a real registry (htpasswd) and the GitHub REST stand-in,
 * with @actions/core's summary, outputs, failure and masking replaced by recorders.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test, vi } from 'vitest';
import { packageReference } from '../../src/conda/naming.js';
import type { CommandResult } from '../../src/commands/report.js';
import { readInputs, type ActionInputs } from '../../src/action/inputs.js';
import { run } from '../../src/action/run.js';
import { githubApi } from '../../src/github/api.js';
import { requestValidation } from '../../src/github/dispatch.js';
import { RemoteStore } from '../../src/oci/remote/store.js';
import { NAMING_V1 } from '../../src/conda/naming-scheme.js';
import { expectedOf, fixturePath } from '../helpers/fixtures.js';
import { startGitHubStandIn, type GitHubStandIn } from '../helpers/github-api.js';
import { useRegistry } from '../helpers/registry.js';
import { makeTokenRegistry } from '../helpers/feedstock-tokens.js';
import { testSecret } from '../helpers/secrets.js';

const core = vi.hoisted(() => {
  const calls: { method: string; args: unknown[] }[] = [];
  const summary: Record<string, (...args: unknown[]) => unknown> = {};
  for (const method of [
    'addHeading',
    'addRaw',
    'addTable',
    'addDetails',
    'addList',
    'addEOL',
    'addCodeBlock',
    'addSeparator',
    'addBreak',
    'addQuote',
    'addLink',
    'addImage',
    'emptyBuffer',
  ])
    summary[method] = (...args: unknown[]) => {
      calls.push({ method, args });
      return summary;
    };
  summary.write = async () => {
    calls.push({ method: 'write', args: [] });
    return summary;
  };
  return {
    summary,
    summaryCalls: calls,
    outputs: new Map<string, string>(),
    setOutput: vi.fn(),
    setFailed: vi.fn(),
    setSecret: vi.fn(),
  };
});

// @actions/github builds `context` from GITHUB_EVENT_PATH once, when it is imported: in an action
// that is the start of the process. Here each access builds it from the env of that moment, so
// that every readInputs() below sees the event file its test wrote.
vi.mock('@actions/github', async (importOriginal) => {
  const real = await importOriginal<typeof import('@actions/github')>();
  const Context = real.context.constructor as new () => typeof real.context;
  return {
    ...real,
    get context() {
      return new Context();
    },
  };
});

vi.mock('@actions/core', async (importOriginal) => {
  const real = await importOriginal<typeof import('@actions/core')>();
  return {
    ...real,
    summary: core.summary,
    setOutput: core.setOutput.mockImplementation((name: string, value: unknown) =>
      core.outputs.set(name, String(value)),
    ),
    setFailed: core.setFailed,
    setSecret: core.setSecret,
  };
});

// Secrets hold the marker the suite-wide secret scan looks for (helpers/secrets.ts).
const FEEDSTOCK = { username: 'demo-pkg-feedstock', password: testSecret('feedstock-Secret-4711') };
const WEBSERVICES = { username: 'webservices', password: testSecret('webservices-Secret-0815') };
const RECORD_KEY = testSecret('record-key-Known-only-to-webservices');
const TOKEN = `ghs_${testSecret('actionTestToken')}`;
const FEEDSTOCK_REPO = 'conda-forge/demo-pkg-feedstock';
const WEBSERVICES_REPO = 'conda-forge/webservices';
const SECRETS = [FEEDSTOCK.password, WEBSERVICES.password, RECORD_KEY, TOKEN];

const CONDA = 'demo-pkg-1.2.3-h1234567_0.conda';
const NEWER = 'demo-pkg-1.2.4-h7654321_1.conda';

const registry = useRegistry({ auth: 'htpasswd', users: [FEEDSTOCK, WEBSERVICES] });
let github: GitHubStandIn;
let work: string;
let direct: RemoteStore;
/** Everything written to stdout (the workflow log) by the real @actions/core functions. */
const log: string[] = [];
const savedEnv = { ...process.env };

beforeAll(async () => {
  github = await startGitHubStandIn({ token: TOKEN, repositories: [FEEDSTOCK_REPO, WEBSERVICES_REPO] });
  work = mkdtempSync(join(tmpdir(), 'conda-oci-action-'));
  direct = new RemoteStore({ host: registry.host, plainHttp: true, credentials: WEBSERVICES });
});
afterAll(async () => {
  await direct?.close();
  await github?.close();
});

beforeEach(() => {
  core.outputs.clear();
  core.summaryCalls.splice(0);
  core.setFailed.mockClear();
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    log.push(String(chunk));
    return true;
  });
  for (const key of Object.keys(process.env)) if (key.startsWith('INPUT_')) delete process.env[key];
  Object.assign(process.env, {
    GITHUB_API_URL: github.url,
    GITHUB_SERVER_URL: 'https://github.com',
    GITHUB_REPOSITORY: FEEDSTOCK_REPO,
    GITHUB_SHA: '0123456789abcdef0123456789abcdef01234567',
    GITHUB_RUN_ID: '4242',
    GITHUB_ACTOR: 'conda-forge-bot',
  });
  delete process.env.GITHUB_EVENT_PATH;
  delete process.env.GITHUB_OUTPUT;
  delete process.env.GITHUB_STEP_SUMMARY;
});
afterEach(() => {
  vi.restoreAllMocks();
  for (const key of Object.keys(process.env)) if (!(key in savedEnv)) delete process.env[key];
  Object.assign(process.env, savedEnv);
});

/** readInputs() with these `INPUT_*` variables and, when given, this event at GITHUB_EVENT_PATH. */
async function readInputsWith(
  inputs: Record<string, string>,
  event?: Record<string, unknown>,
): Promise<ActionInputs> {
  for (const [name, value] of Object.entries(inputs)) process.env[`INPUT_${name.toUpperCase()}`] = value;
  if (event) {
    const path = join(work, `event-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(path, JSON.stringify(event));
    process.env.GITHUB_EVENT_PATH = path;
    process.env.GITHUB_EVENT_NAME = 'repository_dispatch';
  }
  return readInputs();
}

async function inputError(inputs: Record<string, string>, event?: Record<string, unknown>): Promise<Error> {
  try {
    await readInputsWith(inputs, event);
  } catch (err) {
    return err as Error;
  }
  throw new Error('readInputs() accepted the inputs');
}

function summaryText(): string {
  return JSON.stringify(core.summaryCalls);
}

function tableRows(): string[][] {
  const table = core.summaryCalls.find((c) => c.method === 'addTable')!.args[0] as unknown[][];
  return table.slice(1) as string[][];
}

function outputsOf(): {
  result: CommandResult;
  artifacts: unknown[];
  outputs: Record<string, string>;
  failed: number;
} {
  return {
    result: JSON.parse(core.outputs.get('result')!) as CommandResult,
    artifacts: JSON.parse(core.outputs.get('artifacts')!) as unknown[],
    outputs: JSON.parse(core.outputs.get('outputs')!) as Record<string, string>,
    failed: Number(core.outputs.get('failed')),
  };
}

/** Every text the run made visible: outputs, summary, log, failure message. */
function visibleText(): string {
  return [
    ...core.outputs.values(),
    summaryText(),
    log.join(''),
    JSON.stringify(core.setFailed.mock.calls),
  ].join('\n');
}

/** Everything handed to core.setSecret in this file so far (a secret is masked once per process). */
function secretsPassed(): string[] {
  return core.setSecret.mock.calls.map((c) => String(c[0]));
}

function channel(path: string): string {
  return `oci://${registry.host}/${path}`;
}

function stored(channelPath: string, file: string) {
  const e = expectedOf(file);
  const ref = packageReference(e.subdir, e.name, e.version, e.build);
  return { repository: direct.repository(`${channelPath}/${ref.repository}`), tag: ref.tag };
}

// ---------------------------------------------------------------------------------------------

describe('readInputs()', () => {
  test('upload: multi-line globs, the destination, provenance and the dispatch target', async () => {
    const inputs = await readInputsWith({
      command: 'upload',
      files: 'build_artifacts/linux-64/*.conda\n  build_artifacts/noarch/*.tar.bz2\n\n',
      to: 'oci://ghcr.io/cf-staging/conda-forge',
      label: 'rc',
      password: FEEDSTOCK.password,
      'request-validation': WEBSERVICES_REPO,
      'github-token': TOKEN,
      concurrency: '8',
    });
    expect(inputs.options).toEqual({
      command: 'upload',
      files: ['build_artifacts/linux-64/*.conda', 'build_artifacts/noarch/*.tar.bz2'],
      to: 'oci://ghcr.io/cf-staging/conda-forge',
      label: 'rc',
      source: `https://github.com/${FEEDSTOCK_REPO}`,
      revision: '0123456789abcdef0123456789abcdef01234567',
      run: `https://github.com/${FEEDSTOCK_REPO}/actions/runs/4242`,
      username: 'conda-forge-bot',
      password: FEEDSTOCK.password,
      concurrency: 8,
      githubToken: TOKEN,
      requestValidation: WEBSERVICES_REPO,
      naming: NAMING_V1,
      plainHttp: false,
      attest: false,
      sigstore: 'public-good',
    });
    expect(secretsPassed()).toEqual(expect.arrayContaining([FEEDSTOCK.password, TOKEN]));
  });

  test("validate: the upload step's artifacts output (failed uploads are not requests) or its outputs map", async () => {
    const sha = expectedOf(CONDA).sha256;
    const artifactsOutput = [
      {
        subdir: 'linux-64',
        file: CONDA,
        sha256: sha,
        status: 'uploaded',
        digest: 'sha256:' + '1'.repeat(64),
      },
      { subdir: 'linux-64', file: 'broken-1.0-0.conda', status: 'failed', error: 'not a zip' },
    ];
    const fromList = await readInputsWith({
      command: 'validate',
      from: 'oci://ghcr.io/cf-staging/conda-forge',
      artifacts: JSON.stringify(artifactsOutput),
    });
    expect(fromList.options).toMatchObject({
      command: 'validate',
      from: 'oci://ghcr.io/cf-staging/conda-forge',
      artifacts: [{ subdir: 'linux-64', file: CONDA, sha256: sha }],
      deleteFailed: false,
    });
    const fromMap = await readInputsWith({
      command: 'validate',
      from: 'oci://ghcr.io/cf-staging/conda-forge',
      artifacts: JSON.stringify({ [`linux-64/${CONDA}`]: sha }),
      'delete-failed': 'true',
    });
    expect(fromMap.options).toMatchObject({
      artifacts: [{ subdir: 'linux-64', file: CONDA, sha256: sha }],
      deleteFailed: true,
    });
  });

  test('validate and promote take the repository_dispatch payload when there is no artifacts input', async () => {
    const payload = {
      outputs: {
        [`linux-64/${CONDA}`]: expectedOf(CONDA).sha256,
        [`linux-64/${NEWER}`]: expectedOf(NEWER).sha256,
      },
      staging: 'oci://ghcr.io/cf-staging/conda-forge',
      label: 'rc',
      feedstock: 'demo-pkg',
      repository: FEEDSTOCK_REPO,
      sha: 'abc',
      run: `https://github.com/${FEEDSTOCK_REPO}/actions/runs/1`,
    };
    const event = {
      action: 'conda-oci-validate',
      client_payload: payload,
      repository: { full_name: WEBSERVICES_REPO },
    };
    const validate = await readInputsWith(
      {
        command: 'validate',
        from: 'oci://ghcr.io/cf-staging/conda-forge',
        production: 'oci://ghcr.io/conda-forge/conda-forge',
        'record-key': RECORD_KEY,
        'report-issue': 'true',
      },
      event,
    );
    expect(validate).toMatchObject({
      options: {
        command: 'validate',
        from: 'oci://ghcr.io/cf-staging/conda-forge',
        label: 'rc',
        production: 'oci://ghcr.io/conda-forge/conda-forge',
        feedstock: 'demo-pkg',
        recordKey: RECORD_KEY,
        artifacts: [
          { subdir: 'linux-64', file: CONDA, sha256: expectedOf(CONDA).sha256 },
          { subdir: 'linux-64', file: NEWER, sha256: expectedOf(NEWER).sha256 },
        ],
        reportIssue: true,
      },
    });
    expect(secretsPassed()).toContain(RECORD_KEY);

    for (const key of Object.keys(process.env)) if (key.startsWith('INPUT_')) delete process.env[key];
    const promote = await readInputsWith(
      {
        command: 'promote',
        from: 'oci://ghcr.io/cf-staging/conda-forge',
        to: 'oci://ghcr.io/conda-forge/conda-forge',
        'delete-staged': 'yes',
      },
      event,
    );
    expect(promote.options).toMatchObject({
      command: 'promote',
      from: 'oci://ghcr.io/cf-staging/conda-forge',
      to: 'oci://ghcr.io/conda-forge/conda-forge',
      label: 'rc',
      deleteStaged: true,
      artifacts: validate.options.command === 'validate' ? validate.options.artifacts : [],
    });
  });

  test('the dispatch payload cannot choose the staging registry (the credentials go there)', async () => {
    const event = {
      client_payload: {
        outputs: { [`linux-64/${CONDA}`]: expectedOf(CONDA).sha256 },
        staging: 'oci://registry.example.invalid/collect/credentials',
      },
    };
    for (const command of ['validate', 'promote']) {
      const err = await inputError({ command, to: 'oci://ghcr.io/conda-forge/conda-forge' }, event);
      expect(err.name).toBe('UsageError');
      expect(err.message).toContain('input from');
    }
  });

  const STAGING = 'oci://ghcr.io/cf-staging/conda-forge';
  test.each([
    ['command', { command: 'publish' }],
    ['to', { command: 'upload', files: 'a.conda' }],
    ['files', { command: 'upload', to: STAGING }],
    ['concurrency', { command: 'upload', files: 'a.conda', to: STAGING, concurrency: 'many' }],
    ['plain-http', { command: 'upload', files: 'a.conda', to: STAGING, 'plain-http': 'maybe' }],
    ['older-than', { command: 'clean', channel: STAGING, 'older-than': 'soon' }],
    ['dry-run', { command: 'clean', channel: STAGING, 'older-than': '2h', 'dry-run': 'perhaps' }],
    ['artifacts', { command: 'validate', from: STAGING }],
    ['artifacts', { command: 'validate', from: STAGING, artifacts: 'not json' }],
    ['artifacts', { command: 'validate', from: STAGING, artifacts: '{"linux-64/a-1.0-0.conda": "abc"}' }],
    ['from', { command: 'promote', to: STAGING, artifacts: '{}' }],
    [
      'owners',
      {
        command: 'validate',
        from: STAGING,
        artifacts: `{"linux-64/a-1.0-0.conda": "${'a'.repeat(64)}"}`,
        owners: '/nonexistent/owners.json',
        feedstock: 'demo-pkg',
      },
    ],
  ])('a bad or missing %s input is a usage error naming it', async (name, inputs) => {
    const err = await inputError(inputs);
    expect(err.name).toBe('UsageError');
    expect((err as { code?: string }).code).toBe('USAGE');
    expect(err.message).toContain(`input ${name}`);
  });
});

// ---------------------------------------------------------------------------------------------

describe('run(inputs): the action end to end', () => {
  const staging = () => channel('staging/action');
  const production = () => channel('prod/action');

  test('the feedstock uploads, asks for validation; the webservices validate and promote from the dispatch', async () => {
    // --- the feedstock's step
    const uploaded = await run({
      options: {
        command: 'upload',
        files: [fixturePath(CONDA), fixturePath(NEWER)],
        to: staging(),
        ...FEEDSTOCK,
        revision: '0123456789abcdef0123456789abcdef01234567',
        githubToken: TOKEN,
        requestValidation: WEBSERVICES_REPO,
        run: `https://github.com/${FEEDSTOCK_REPO}/actions/runs/4242`,
      },
    });
    expect(uploaded?.exitCode).toBe(0);
    expect(core.setFailed).not.toHaveBeenCalled();
    const out = outputsOf();
    expect(out.result).toEqual(uploaded);
    expect(out.artifacts).toHaveLength(2);
    expect(out.failed).toBe(0);
    expect(out.outputs).toEqual({
      [`linux-64/${CONDA}`]: expectedOf(CONDA).sha256,
      [`linux-64/${NEWER}`]: expectedOf(NEWER).sha256,
    });
    expect(tableRows().map((row) => row[0])).toEqual([`<code>${CONDA}</code>`, `<code>${NEWER}</code>`]);
    expect(core.summaryCalls.at(-1)!.method).toBe('write');
    expect(secretsPassed()).toEqual(expect.arrayContaining([FEEDSTOCK.password, TOKEN]));

    expect(github.dispatches).toHaveLength(1);
    const dispatch = github.dispatches[0]!;
    expect(dispatch.repository).toBe(WEBSERVICES_REPO);
    expect(dispatch.event_type).toBe('conda-oci-validate');
    expect(dispatch.client_payload).toEqual({
      outputs: out.outputs,
      staging: staging(),
      repository: FEEDSTOCK_REPO,
      feedstock: 'demo-pkg',
      sha: '0123456789abcdef0123456789abcdef01234567',
      run: `https://github.com/${FEEDSTOCK_REPO}/actions/runs/4242`,
    });
    expect(log.join('')).toContain(`Asked ${WEBSERVICES_REPO} to validate 2 artifact(s)`);
    const dispatchRequest = github.requests.find((r) => r.pathname.endsWith('/dispatches'))!;
    expect(dispatchRequest.authorization).toBe(`token ${TOKEN}`);

    // --- the webservices' workflow, started by that dispatch
    const event = { action: dispatch.event_type, client_payload: dispatch.client_payload };
    process.env.GITHUB_REPOSITORY = WEBSERVICES_REPO;
    const validateInputs = await readInputsWith(
      {
        command: 'validate',
        from: staging(),
        production: production(),
        username: WEBSERVICES.username,
        password: WEBSERVICES.password,
        'record-key': RECORD_KEY,
        'report-issue': 'true',
        'github-token': TOKEN,
      },
      event,
    );
    core.summaryCalls.splice(0);
    const validated = await run(validateInputs);
    expect(validated?.artifacts.map((a) => a.status)).toEqual(['passed', 'passed']);
    expect(core.setFailed).not.toHaveBeenCalled();
    expect(outputsOf().outputs).toEqual(out.outputs);
    expect(core.summaryCalls.filter((c) => c.method === 'addDetails')).toHaveLength(2);
    expect(github.issues(FEEDSTOCK_REPO)).toEqual([]);

    for (const key of Object.keys(process.env)) if (key.startsWith('INPUT_')) delete process.env[key];
    const promoteInputs = await readInputsWith(
      {
        command: 'promote',
        from: staging(),
        to: production(),
        username: WEBSERVICES.username,
        password: WEBSERVICES.password,
        'record-key': RECORD_KEY,
        'delete-staged': 'true',
      },
      event,
    );
    const promoted = await run(promoteInputs);
    expect(promoted?.artifacts.map((a) => a.status)).toEqual(['promoted', 'promoted']);
    expect(core.setFailed).not.toHaveBeenCalled();
    for (const file of [CONDA, NEWER]) {
      const published = stored('prod/action', file);
      const digest = uploaded!.artifacts.find((a) => a.file === file)!.digest;
      expect((await published.repository.resolve(published.tag))?.digest).toBe(digest);
      const left = stored('staging/action', file);
      expect(await left.repository.resolve(left.tag)).toBeUndefined();
    }
    expect(secretsPassed()).toEqual(expect.arrayContaining([WEBSERVICES.password, RECORD_KEY]));
    for (const secret of SECRETS) expect(visibleText()).not.toContain(secret);
  });

  test('a failed validation opens an issue on the feedstock, a second one comments on it', async () => {
    const stagingUrl = channel('staging/issues');
    await run({ options: { command: 'upload', files: [fixturePath(CONDA)], to: stagingUrl, ...FEEDSTOCK } });
    expect(core.setFailed).not.toHaveBeenCalled();
    // The feedstock claims another build's sha256: the staged bytes are not what it says it built.
    // It proves who it is with its token, so the issue goes to its own repository (and only there).
    const [owner, feedstock] = FEEDSTOCK_REPO.split('/') as [string, string];
    const tokens = makeTokenRegistry([feedstock]);
    const validateInputs: ActionInputs = {
      options: {
        command: 'validate',
        from: stagingUrl,
        artifacts: [{ subdir: 'linux-64', file: CONDA, sha256: expectedOf(NEWER).sha256 }],
        recordKey: RECORD_KEY,
        ...WEBSERVICES,
        githubToken: TOKEN,
        reportIssue: true,
        publishers: [owner],
        feedstockTokens: tokens.dir,
        feedstock,
        feedstockToken: tokens.tokens[feedstock]!,
      },
      sources: {
        env: { ...process.env, GITHUB_REPOSITORY: WEBSERVICES_REPO, GITHUB_RUN_ID: '77' },
        shell: 'action',
      },
    };

    const first = await run(validateInputs);
    expect(first?.exitCode).toBe(1);
    expect(core.setFailed).toHaveBeenCalledTimes(1);
    expect(String(core.setFailed.mock.calls[0]![0])).toContain(`linux-64/${CONDA}`);
    expect(outputsOf().failed).toBe(1);
    expect(outputsOf().outputs).toEqual({});
    expect(summaryText()).toContain('claimed-sha256');
    let issues = github.issues(FEEDSTOCK_REPO);
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatchObject({ state: 'open', labels: ['conda-oci-validation'], comments: [] });
    expect(issues[0]!.body).toContain(`linux-64/${CONDA}`);
    expect(issues[0]!.body).toContain('claimed-sha256');
    expect(issues[0]!.body).toContain(`https://github.com/${WEBSERVICES_REPO}/actions/runs/77`);

    core.setFailed.mockClear();
    const second = await run(validateInputs);
    expect(second?.exitCode).toBe(1);
    expect(core.setFailed).toHaveBeenCalledTimes(1);
    issues = github.issues(FEEDSTOCK_REPO);
    expect(issues).toHaveLength(1);
    expect(issues[0]!.comments).toHaveLength(1);
    expect(issues[0]!.comments[0]).toContain('claimed-sha256');
    expect(secretsPassed()).toEqual(expect.arrayContaining([WEBSERVICES.password, RECORD_KEY]));
    for (const secret of SECRETS) {
      expect(visibleText()).not.toContain(secret);
      expect(JSON.stringify(issues)).not.toContain(secret);
    }
  });

  test('a secret that ends up in an error text is cut out of outputs, summary, log and failure', async () => {
    const missing = join(work, 'linux-64', `${FEEDSTOCK.password}-1.0-0.conda`);
    const result = await run({
      options: {
        command: 'upload',
        files: [fixturePath(CONDA), missing],
        to: channel('staging/leak'),
        ...FEEDSTOCK,
        githubToken: TOKEN,
        requestValidation: WEBSERVICES_REPO,
      },
    });
    expect(result?.artifacts.map((a) => a.status)).toEqual(['uploaded', 'failed']);
    expect(result?.artifacts[1]!.error).toContain(FEEDSTOCK.password);
    expect(core.setFailed).toHaveBeenCalledTimes(1);
    expect(tableRows()).toHaveLength(2);
    expect(outputsOf().failed).toBe(1);
    expect(secretsPassed()).toContain(FEEDSTOCK.password);
    const text = visibleText();
    expect(text).toContain('***');
    for (const secret of SECRETS) expect(text).not.toContain(secret);
    // Only the artifact that was staged is sent for validation.
    expect(Object.keys(github.dispatches.at(-1)!.client_payload.outputs as object)).toEqual([
      `linux-64/${CONDA}`,
    ]);
  });

  test("a large outputs map is sent in several dispatches, each within GitHub's limits", async () => {
    const outputs: Record<string, string> = {};
    for (let i = 0; i < 1500; i++)
      outputs[`linux-64/package-number-${i}-1.0.0-h0123456_0.conda`] = i.toString(16).padStart(64, '0');
    const before = github.dispatches.length;
    const sent = await requestValidation(githubApi(TOKEN, github.url), WEBSERVICES_REPO, {
      outputs,
      staging: staging(),
      feedstock: 'many',
      repository: FEEDSTOCK_REPO,
    });
    const received = github.dispatches.slice(before);
    expect(sent).toBeGreaterThan(1);
    expect(received).toHaveLength(sent);
    const merged: Record<string, unknown> = {};
    for (const d of received) {
      expect(d.client_payload).toMatchObject({
        staging: staging(),
        feedstock: 'many',
        repository: FEEDSTOCK_REPO,
      });
      Object.assign(merged, d.client_payload.outputs);
    }
    expect(merged).toEqual(outputs);
  });

  test('nothing staged: no dispatch is sent, and the step fails', async () => {
    const before = github.dispatches.length;
    await run({
      options: {
        command: 'upload',
        files: [join(work, 'linux-64', 'absent-1.0-0.conda')],
        to: channel('staging/none'),
        ...FEEDSTOCK,
        githubToken: TOKEN,
        requestValidation: WEBSERVICES_REPO,
      },
    });
    expect(github.dispatches.length).toBe(before);
    expect(core.setFailed).toHaveBeenCalledTimes(1);
  });
});
