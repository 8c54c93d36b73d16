/**
 * What every command hands back: one entry per artifact, and the progress it reports on the way.
 * The CLI prints these to stderr; the action sends them to the workflow log and job summary.
 */

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
