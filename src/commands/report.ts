/**
 * What every command hands back: one entry per artifact, and the progress it reports on the way.
 * The CLI prints these to stderr; the action sends them to the workflow log and job summary.
 */
import { formatBytes } from '../util/format-bytes.js';

export type ProgressUnit = 'bytes' | 'items';

/** Progress and notices while a command runs (never the result itself). */
export interface Reporter {
  info(message: string): void;
  warn(message: string): void;
  /**
   * How far a long piece of work is: bytes of a transfer, or items of a phase (`unit: 'items'`).
   * Called often; the reporter decides how often to print.
   */
  progress?(label: string, done: number, total: number, unit?: ProgressUnit): void;
}

export const silentReporter: Reporter = { info() {}, warn() {} };

/** One named check of `validate`, and promote's re-checks. */
export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

/** The per-artifact record of SPEC §6.1, extended with the command's outcome. */
export interface ArtifactResult {
  subdir: string;
  /** The artifact's file name, e.g. `numpy-2.1.0-py312h1234567_0.conda`. */
  file: string;
  name?: string;
  version?: string;
  build?: string;
  sha256?: string;
  md5?: string;
  size?: number;
  /** Full repository path on the registry (or below the layout directory). */
  repository?: string;
  tag?: string;
  /** Digest of the artifact's manifest. */
  digest?: string;
  /** `host/repository:tag`, for people. */
  reference?: string;
  /** Layout both: the v0 name (`host/repository:tag`) that holds the same manifest. */
  v0Reference?: string;
  status: ArtifactStatus;
  /** Why it failed or was skipped, in words. */
  error?: string;
  checks?: Check[];
  bytesSent?: number;
  /** validate: who asked, as proven (an attestation's repository and workflow, or a feedstock token). */
  requester?: string;
  /** validate: `<owner>/<repo>` of the proven requester (where report-issue writes). */
  requesterRepository?: string;
  /** validate: the digest of the validation record; promote can be given it. */
  record?: string;
  /** upload with attest: the digest of the publish attestation attached to the staged manifest. */
  attestation?: string;
}

export type ArtifactStatus =
  | 'uploaded'
  | 'exists'
  | 'skipped'
  | 'passed'
  | 'promoted'
  | 'already-published'
  | 'deleted'
  | 'would-delete'
  | 'failed';

export interface CommandResult {
  command: string;
  /** The channels involved, by role. */
  channels: Record<string, string>;
  artifacts: ArtifactResult[];
  /** Counts by status, plus request and byte counters. */
  summary: Record<string, number>;
  /** 0: everything succeeded; 1: at least one artifact failed. */
  exitCode: 0 | 1;
}

export function countStatuses(artifacts: ArtifactResult[]): Record<string, number> {
  const counts: Record<string, number> = { total: artifacts.length };
  for (const a of artifacts) counts[a.status] = (counts[a.status] ?? 0) + 1;
  return counts;
}

export function finish(
  command: string,
  channels: Record<string, string>,
  artifacts: ArtifactResult[],
  extra: Record<string, number> = {},
): CommandResult {
  return {
    command,
    channels,
    artifacts,
    summary: { ...countStatuses(artifacts), ...extra },
    exitCode: artifacts.some((a) => a.status === 'failed') ? 1 : 0,
  };
}

/** How the summary's counters read in prose (the result document keeps its keys). */
const COUNTER_WORDS: Record<string, (n: number) => string> = {
  bytesSent: (n) => `${formatBytes(n)} sent`,
  httpBytesSent: (n) => `${formatBytes(n)} sent over HTTP`,
  httpBytesReceived: (n) => `${formatBytes(n)} received over HTTP`,
  requests: (n) => `${n} request${n === 1 ? '' : 's'}`,
};

/** repodata's counters are about packages; its artifacts are the documents it wrote. */
const REPODATA_COUNTERS = ['records', 'fetched', 'cached', 'skipped'];

/**
 * The result in one sentence, for the CLI and the job summary: `upload: 9 artifact(s): 9
 * uploaded, 45.7 KiB sent`, or for repodata `repodata: 9 package(s) indexed (9 read, 0 from the
 * cache, 0 left out); 9 document(s): 9 uploaded`.
 */
export function summarySentence(result: CommandResult): string {
  const { total = 0, ...rest } = result.summary;
  const isRepodata = result.command === 'repodata' && 'records' in rest;
  const counts = Object.entries(rest)
    .filter(([k]) => !isRepodata || !REPODATA_COUNTERS.includes(k))
    .map(([k, v]) => COUNTER_WORDS[k]?.(v) ?? `${v} ${k}`)
    .join(', ');
  if (!isRepodata) return `${result.command}: ${total} artifact(s): ${counts || 'nothing to do'}`;
  const n = (k: string) => rest[k] ?? 0;
  return (
    `${result.command}: ${n('records')} package(s) indexed (${n('fetched')} read, ${n('cached')} from the cache, ` +
    `${n('skipped')} left out); ${total} document(s): ${counts || 'nothing to do'}`
  );
}
