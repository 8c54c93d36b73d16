/** Options that several commands share, declared once (README "The CLI", "Action inputs"). */
import { parseNaming, type Naming, NAMING_V1 } from '../conda/naming-scheme.js';
import { parseArtifactValues, payloadArtifacts, type RequestedArtifact } from '../commands/artifact-list.js';
import { flag, integerIn, list, text } from './options.js';

/** Registry access: credentials, transport. */
export const REGISTRY_OPTIONS = {
  username: text('username', {
    help: 'Registry user name.',
    placeholder: '<user>',
    env: ['CONDA_OCI_USERNAME'],
    fallback: ({ env, shell }) => (shell === 'action' ? env.GITHUB_ACTOR || undefined : undefined),
    defaultText: 'in the action, the workflow actor; else the docker config',
  }),
  password: text('password', {
    help: 'Registry password or token (GHCR: a token with packages write for the target org).',
    placeholder: '<token>',
    env: ['CONDA_OCI_PASSWORD'],
    secret: true,
    defaultText: 'the docker config auths, else anonymous',
  }),
  plainHttp: flag('plain-http', {
    help: 'Plain HTTP to a registry that is not on loopback (loopback hosts always use it).',
  }),
};

/** Where a run's result document goes. */
export const RESULT_OPTIONS = {
  resultFile: text('result-file', {
    aliases: ['result'],
    help: 'Also write the result document (JSON: every artifact, its status, digests and checks) to this file.',
    placeholder: '<file>',
    example: 'result.json',
  }),
  json: flag('json', { help: 'Print the result document on stdout (progress goes to stderr).', only: 'cli' }),
};

export const LABEL_OPTION = {
  label: text('label', {
    help: 'The channel label ("main" means none); a label in the channel URL must agree.',
    example: 'rc',
    fallback: ({ payload }) => (typeof payload?.label === 'string' ? payload.label : undefined),
    defaultText: 'the label of the channel URL (in the action: "label" of the dispatch payload)',
  }),
};

/** `layout` (for users) chooses the naming scheme (in the code). */
export const NAMING_OPTION = {
  naming: text<Naming>('layout', {
    help:
      'v1: the CEP v1 names only. both: also the v0 names and v0 repodata that rattler, mamba and pixi ' +
      'read today (same manifests, blobs mounted). Use the same value on every step of a channel.',
    placeholder: 'v1|both',
    parse: parseNaming,
    default: NAMING_V1,
    defaultText: 'v1',
  }),
};

export const GITHUB_TOKEN_OPTION = {
  githubToken: text('github-token', {
    help: "Token for GitHub's REST API: GHCR package listing and deletion, the validation dispatch, feedstock issues.",
    placeholder: '<token>',
    env: ['GITHUB_TOKEN'],
    secret: true,
    actionDefault: '${{ github.token }}',
    defaultText: 'in the action, github.token',
  }),
};

/** How many artifacts (or repositories) a command works on at once; one rule for every command. */
export function concurrencyOption(what: string, value: number, max = 64) {
  return {
    concurrency: text('concurrency', {
      help: `${what} at once.`,
      parse: integerIn(1, max),
      default: value,
      placeholder: '<n>',
    }),
  };
}

/** The artifacts a validate or promote run is about. */
export const ARTIFACTS_OPTION = {
  artifacts: list<RequestedArtifact[]>('artifacts', {
    aliases: ['artifact'],
    help:
      'The artifacts: <subdir>/<file>=<sha256> (repeatable), the upload step\'s "result" or "outputs", ' +
      'a conda-forge outputs map {"<subdir>/<file>": "<sha256>"}, or the path of a file holding one.',
    placeholder: '<artifacts>',
    example: 'linux-64/numpy-2.1.0-py312h1234567_0.conda=<sha256>',
    split: false,
    combine: (values) => parseArtifactValues(values, 'artifacts'),
    fallback: ({ payload }) => payloadArtifacts(payload),
    defaultText: 'in the action, the outputs of the repository_dispatch payload',
    required: true,
  }),
};
