/**
 * `repodata` (SPEC §5, §6.5): the nightly job. Lists every package repository and tag of each
 * subdir of a (production) channel, reads each new artifact's manifest and info layer (never a
 * package blob), and publishes repodata.json, repodata_from_packages.json, current_repodata.json,
 * run_exports.json and patch_instructions.json per subdir, and channeldata.json per channel.
 *
 * - Requests: one tag list per package repository, then per artifact not in the cache one GET of
 *   the manifest by tag (its digest is computed from the body) and one GET of the info layer,
 *   which holds info/index.json (checked against the index layer's digest), run_exports.json,
 *   about.json and paths.json. Cached tags cost nothing (production tags never move;
 *   `verify` re-resolves them).
 * - A document whose JSON equals the `latest` one's JSON layer is not pushed again (compressor
 *   versions can never cause a push). Otherwise its blobs go first, then the manifest under a
 *   `YYYYMMDDThhmmssZ` tag, then `latest`.
 * - An artifact that is not a well-formed package (bad manifest, name/tag mismatch, index.json
 *   that disagrees) is left out with a warning; a registry failure fails the subdir, so that a
 *   half-read channel never replaces a complete repodata.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ArchiveError } from '../conda/archive-error.js';
import { readPackageManifest, type PackageManifestInfo } from '../conda/artifact.js';
import { readInfoLayer } from '../conda/info-layer.js';
import {
  buildMetadataArtifact,
  METADATA_KINDS,
  metadataJsonLayer,
  type CompressionLevels,
  type CompressionMemo,
  type MetadataKind,
} from '../conda/metadata-artifact.js';
import { isPackageTag, LATEST_TAG, packageReference } from '../conda/naming.js';
import { NAMING_V1, type Naming, type RepodataCopy } from '../conda/naming-scheme.js';
import {
  applyPatchInstructions,
  checkPatchInstructions,
  emptyChanneldata,
  encodeChanneldata,
  encodeCurrentRepodata,
  encodeRepodata,
  encodeRunExports,
  mergeChanneldata,
  packageRecord,
  parseChanneldata,
  PatchInstructionsError,
  updateChanneldata,
  withoutSubdirs,
  type Channeldata,
  type JsonObject,
  type PatchInstructions,
  type RepodataEntry,
} from '../conda/repodata.js';
import { canonicalStringify } from '../util/canonical-json.js';
import { mapLimit } from '../util/map-limit.js';
import { digestHex, digestOf, type Digest } from '../oci/digest.js';
import { InvalidReferenceError, NotFoundError, OciError, ProtocolError } from '../oci/errors.js';
import { describeError } from '../util/describe-error.js';
import { pushArtifact } from '../oci/push.js';
import {
  channelRepository,
  channelUrl,
  checkSubdir,
  formatReference,
  type Channel,
} from '../conda/channel.js';
import type { Repository, Store } from '../oci/storage.js';
import { packageRepositories, type PackageRepository } from './channel-scan.js';
import { cacheKey, loadCache, saveCache, type CachedArtifact } from './repodata-cache.js';
import { finish, type ArtifactResult, type CommandResult, type Reporter } from './report.js';
import { formatBytes } from '../util/format-bytes.js';
import { isV0NameOf, publishV0Repodata } from './v0-compat.js';

export interface RepodataOptions {
  channel: Channel;
  /** Subdirs to index; none: every subdir found in the channel, plus noarch. */
  subdirs?: string[];
  /**
   * conda-forge repodata patch instructions: a JSON file (one instructions object for every
   * subdir, or an object keyed by subdir), or a directory of `<subdir>/patch_instructions.json`.
   */
  patchInstructions?: string;
  /** Where the record cache lives between runs. */
  cacheDir?: string;
  /** Re-resolve every cached tag (HEAD) and read again what changed. */
  verify?: boolean;
  /** Requests in flight at once. */
  concurrency?: number;
  compression?: CompressionLevels;
  /** The naming scheme: with v0 names, the v0 repodata copies too. Default: v1 only. */
  naming?: Naming;
}

export interface RepodataContext {
  store: Store;
  reporter: Reporter;
  now?: () => Date;
}

const DEFAULT_CONCURRENCY = 16;
const INDEX_JSON_LIMIT = 1024 * 1024;
/** Info layers up to this size are read whole (most are a few KiB); larger ones stream. */
const WHOLE_INFO_LAYER = 1024 * 1024;
const CHANNELDATA_LIMIT = 1024 * 1024 * 1024;

/** `YYYYMMDDThhmmssZ` (UTC), the tag older metadata copies keep. */
export function timestampTag(date: Date): string {
  return date
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}

// ---------------------------------------------------------------------------------------------
// Patch instructions

type InstructionsFor = (subdir: string) => Promise<PatchInstructions | undefined>;

const INSTRUCTION_KEYS = ['patch_instructions_version', 'packages', 'packages.conda', 'remove', 'revoke'];

async function readJsonFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new InvalidReferenceError(`cannot read patch instructions ${path}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new InvalidReferenceError(`patch instructions ${path} are not JSON`);
  }
}

function checked(value: unknown, what: string): PatchInstructions {
  try {
    return checkPatchInstructions(value, what);
  } catch (err) {
    if (err instanceof PatchInstructionsError) throw new InvalidReferenceError(err.message, { cause: err });
    throw err;
  }
}

/** Reads the patch instructions up front, so that a bad file stops the run before any request. */
export async function loadPatchInstructions(path: string): Promise<InstructionsFor> {
  let isDirectory: boolean;
  try {
    isDirectory = (await stat(path)).isDirectory();
  } catch (err) {
    throw new InvalidReferenceError(`cannot read patch instructions ${path}: ${(err as Error).message}`);
  }
  if (isDirectory) {
    return async (subdir) => {
      const file = join(path, subdir, 'patch_instructions.json');
      try {
        await stat(file);
      } catch {
        return undefined;
      }
      return checked(await readJsonFile(file), file);
    };
  }
  const doc = await readJsonFile(path);
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc))
    throw new InvalidReferenceError(`patch instructions ${path} must be a JSON object`);
  const keys = Object.keys(doc);
  if (keys.length === 0 || keys.some((k) => INSTRUCTION_KEYS.includes(k))) {
    const single = checked(doc, path);
    return async () => single;
  }
  const perSubdir = new Map<string, PatchInstructions>();
  for (const [subdir, value] of Object.entries(doc)) {
    checkSubdir(subdir);
    perSubdir.set(subdir, checked(value, `${path} ("${subdir}")`));
  }
  return async (subdir) => perSubdir.get(subdir);
}

// ---------------------------------------------------------------------------------------------
// Reading artifacts

/** Phases with fewer items than this end in moments: no progress lines for them. */
const PROGRESS_MIN_ITEMS = 500;

/** An artifact that is not a well-formed package: left out, with a warning. */
class NotAPackage extends Error {
  override readonly name = 'NotAPackage';
}

/**
 * The v0 name of a package (layout both) that happens to look like a v1 name: `<subdir>/cmake`
 * is the v0 repository of `cmake` and the v1 repository of `make`. Left out without a warning;
 * the package is indexed from its v1 name.
 */
class V0Name extends Error {
  override readonly name = 'V0Name';
}

function isMalformed(err: unknown): boolean {
  return (
    err instanceof NotAPackage ||
    err instanceof ProtocolError ||
    err instanceof InvalidReferenceError ||
    err instanceof NotFoundError
  );
}

interface WorkItem {
  repository: PackageRepository;
  tag: string;
  cached?: CachedArtifact;
}

async function readArtifact(
  store: Store,
  channel: Channel,
  item: WorkItem,
  reporter: Reporter,
): Promise<CachedArtifact> {
  const { repository: repo, tag } = item;
  const subdir = repo.subdir;
  const repository = store.repository(repo.name);
  const what = formatReference(channel, repo.name, tag);
  const fetched = await repository.fetchManifest(tag);
  const info = readPackageManifest(fetched.bytes, what);
  const expected = packageReference(subdir, info.name, info.version, info.build);
  if (expected.repository !== `${subdir}/${repo.component}` || expected.tag !== tag) {
    if (isV0NameOf(repo.name, subdir, tag, info))
      throw new V0Name(`${what} is the v0 name of ${info.name} ${info.version} ${info.build}`);
    throw new NotAPackage(
      `${what} holds ${info.name} ${info.version} ${info.build}, which belongs at ${expected.repository}:${expected.tag}`,
    );
  }
  const fileName = `${info.name}-${info.version}-${info.build}.${info.format}`;
  if (info.fileName !== fileName)
    throw new NotAPackage(`${what}: the package layer is titled "${info.fileName}", not "${fileName}"`);

  const { indexBytes, layer } = await readIndexAndInfo(repository, info, what, reporter);
  let index: unknown;
  try {
    index = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(indexBytes));
  } catch {
    throw new NotAPackage(`${what}: info/index.json is not valid JSON`);
  }
  if (index === null || typeof index !== 'object' || Array.isArray(index))
    throw new NotAPackage(`${what}: info/index.json is not a JSON object`);
  const fields = index as JsonObject;
  for (const [field, value] of [
    ['name', info.name],
    ['version', info.version],
    ['build', info.build],
    ['subdir', subdir],
  ] as const) {
    if (fields[field] !== value)
      throw new NotAPackage(
        `${what}: info/index.json says ${field} ${JSON.stringify(fields[field])}, not ${JSON.stringify(value)}`,
      );
  }
  if (info.md5 === undefined) reporter.warn(`${what}: the package layer has no md5 annotation`);
  const record = packageRecord(fields, {
    sha256: digestHex(info.packageLayer.digest),
    md5: info.md5,
    size: info.packageLayer.size,
  });
  const artifact: CachedArtifact = {
    component: repo.component,
    tag,
    digest: fetched.descriptor.digest,
    fileName,
    record: jsonText(record, `${what}: info/index.json`),
  };
  if (layer?.runExports) {
    try {
      artifact.runExports = jsonText(layer.runExports, `${what}: info/run_exports.json`);
    } catch (err) {
      reporter.warn(`${describeError(err)}; run_exports left out`);
    }
  }
  if (layer?.about) artifact.about = jsonText(layer.about, `${what}: info/about.json`);
  if (layer && Object.values(layer.postInstall).some(Boolean))
    artifact.postInstall = canonicalStringify(layer.postInstall);
  return artifact;
}

/** Nesting deeper than this is no package metadata (and would exhaust the stack). */
const MAX_JSON_DEPTH = 64;

function jsonDepth(value: unknown, depth = 0): number {
  if (depth > MAX_JSON_DEPTH || value === null || typeof value !== 'object') return depth;
  let max = depth;
  for (const v of Object.values(value)) max = Math.max(max, jsonDepth(v, depth + 1));
  return max;
}

/** Canonical JSON of package metadata, refused (as not a package) when absurdly nested. */
function jsonText(value: unknown, what: string): string {
  if (jsonDepth(value) > MAX_JSON_DEPTH)
    throw new NotAPackage(`${what} is nested deeper than ${MAX_JSON_DEPTH} levels`);
  return canonicalStringify(value);
}

/**
 * True for errors of the layer's content (gzip, tar, size limits), false for the transport's and
 * the registry's (those fail the subdir rather than leave run_exports out).
 */
function isContentError(err: unknown): boolean {
  if (err instanceof ArchiveError) return true; // the layer's gzip, tar and limits (info-layer.ts)
  if (err instanceof OciError) return err.code === 'SIZE_LIMIT';
  const code = (err as { code?: unknown }).code;
  if (typeof code !== 'string') return true;
  return code.startsWith('Z_') || code.startsWith('ERR_INVALID') || code === 'ERR_STREAM_PREMATURE_CLOSE';
}

/**
 * The info layer gives index.json, run_exports, about and paths in one request. Its index.json
 * must hash to the index layer's digest; if it does not (or the layer cannot be read), the
 * index layer itself is read and the extras are left out.
 */
async function readIndexAndInfo(
  repository: Repository,
  info: PackageManifestInfo,
  what: string,
  reporter: Reporter,
): Promise<{ indexBytes: Uint8Array; layer?: Awaited<ReturnType<typeof readInfoLayer>> }> {
  let layer: Awaited<ReturnType<typeof readInfoLayer>> | undefined;
  let problem: string | undefined;
  try {
    layer = await readInfoLayer(
      info.infoLayer.size <= WHOLE_INFO_LAYER
        ? await repository.readBlob(info.infoLayer, WHOLE_INFO_LAYER)
        : await repository.openBlob(info.infoLayer),
    );
    for (const p of layer.problems) reporter.warn(`${what}: ${p}`);
    if (!layer.indexJson) problem = 'the info layer has no info/index.json';
    else if (digestOf(layer.indexJson) !== info.indexLayer.digest)
      problem = "the info layer's info/index.json differs from the index layer";
  } catch (err) {
    if (!isContentError(err)) throw err;
    problem = `the info layer cannot be read (${describeError(err)})`;
    layer = undefined;
  }
  if (problem === undefined) return { indexBytes: layer!.indexJson!, layer: layer! };
  reporter.warn(`${what}: ${problem}; using the index layer, without run_exports and channeldata details`);
  return { indexBytes: await repository.readBlob(info.indexLayer, INDEX_JSON_LIMIT) };
}

// ---------------------------------------------------------------------------------------------
// Publishing

interface Publication {
  kind: MetadataKind;
  /** The subdir, or undefined for channel-level documents. */
  subdir?: string;
  json: Uint8Array;
}

async function currentJsonLayer(
  repository: Repository,
  kind: MetadataKind,
  what: string,
  reporter: Reporter,
): Promise<{ manifestDigest: string; jsonLayer: { digest: string; size: number } } | undefined> {
  let fetched;
  try {
    fetched = await repository.fetchManifest(LATEST_TAG);
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
  try {
    return {
      manifestDigest: fetched.descriptor.digest,
      jsonLayer: metadataJsonLayer(fetched.bytes, kind, what),
    };
  } catch (err) {
    if (!(err instanceof ProtocolError)) throw err;
    reporter.warn(`${what} is not a ${kind.fileName} artifact; it is replaced (${err.message})`);
    return undefined;
  }
}

interface PublishContext {
  store: Store;
  channel: Channel;
  tag: string;
  levels: CompressionLevels;
  memo: CompressionMemo;
  reporter: Reporter;
}

async function publish(publication: Publication, context: PublishContext): Promise<ArtifactResult> {
  const { store, channel, tag, levels, memo, reporter } = context;
  const { kind, subdir, json } = publication;
  const repositoryName = channelRepository(channel, subdir ? `${subdir}/${kind.component}` : kind.component);
  const repository = store.repository(repositoryName);
  const reference = formatReference(channel, repositoryName, LATEST_TAG);
  const result: ArtifactResult = {
    subdir: subdir ?? '',
    file: kind.fileName,
    sha256: digestHex(digestOf(json)),
    size: json.length,
    repository: repositoryName,
    tag: LATEST_TAG,
    reference,
    status: 'uploaded',
  };
  const where = subdir ? `${subdir}/${kind.fileName}` : kind.fileName;
  const current = await currentJsonLayer(repository, kind, reference, reporter);
  if (current?.jsonLayer.digest === digestOf(json)) {
    reporter.info(`${where}: unchanged (${formatBytes(json.length)}), nothing pushed`);
    return { ...result, digest: current.manifestDigest, status: 'exists' };
  }
  const artifact = await buildMetadataArtifact(kind, json, levels, memo);
  const outcome = await pushArtifact(repository, artifact, { tag });
  await repository.pushManifest(artifact.manifest, LATEST_TAG);
  reporter.info(
    `${where}: pushed ${formatBytes(json.length)} as ${reference} and :${tag} (${formatBytes(outcome.bytesSent)} sent)`,
  );
  return { ...result, digest: artifact.descriptor.digest, bytesSent: outcome.bytesSent };
}

/** The v0 repodata copies, from the v1 repodata.json just published (or found unchanged). */
async function publishV0(
  subdir: string,
  copies: RepodataCopy[],
  published: ArtifactResult,
  context: PublishContext,
): Promise<ArtifactResult[]> {
  if (published.status === 'failed' || !published.digest || !published.repository)
    throw new ProtocolError(`${subdir}: no v1 repodata.json to copy to the v0 name`);
  const outcomes = await publishV0Repodata(
    context.store,
    context.channel,
    copies,
    published.repository,
    published.digest,
    context.tag,
  );
  return outcomes.map((o) => {
    context.reporter.info(
      `${subdir}: v0 ${o.reference} ${o.status === 'exists' ? 'unchanged' : `pushed (:${context.tag}, ${formatBytes(o.bytesSent)} sent)`}`,
    );
    return {
      subdir,
      file: o.repository.slice(o.repository.lastIndexOf('/') + 1),
      repository: o.repository,
      tag: LATEST_TAG,
      digest: o.digest,
      reference: o.reference,
      status: o.status,
      bytesSent: o.bytesSent,
    };
  });
}

// ---------------------------------------------------------------------------------------------
// The command

interface SubdirOutcome {
  results: ArtifactResult[];
  channeldata?: Channeldata;
  counts: { records: number; fetched: number; cached: number; skipped: number };
}

function parseJsonText<T>(text: string | undefined): T | undefined {
  return text === undefined ? undefined : (JSON.parse(text) as T);
}

async function indexSubdir(
  subdir: string,
  repositories: PackageRepository[],
  options: RepodataOptions,
  context: RepodataContext,
  instructionsFor: InstructionsFor | undefined,
  publishing: PublishContext,
): Promise<SubdirOutcome> {
  const { store, reporter } = context;
  const channel = options.channel;
  const channelId = channelUrl(channel);
  const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
  const instructions = await instructionsFor?.(subdir);

  const cache = options.cacheDir
    ? await loadCache(options.cacheDir, channelId, subdir)
    : { entries: new Map<string, CachedArtifact>() };
  if (cache.ignored) reporter.warn(`cache: ${cache.ignored}`);

  // Minutes on a large channel: progress for both phases (live on a terminal, a line per tenth in
  // logs), where there is enough to take a while.
  const progressOf = (count: number) =>
    count >= PROGRESS_MIN_ITEMS ? reporter.progress?.bind(reporter) : undefined;
  const listProgress = progressOf(repositories.length);
  let listed = 0;
  const tagLists = await mapLimit(repositories, concurrency, async (repository) => {
    const tags: string[] = [];
    for await (const t of store.repository(repository.name).listTags()) if (isPackageTag(t)) tags.push(t);
    listProgress?.(`${subdir}: tag lists`, ++listed, repositories.length, 'items');
    return tags.sort().map((t): WorkItem => {
      const cached = cache.entries.get(cacheKey(repository.component, t));
      return { repository, tag: t, ...(cached ? { cached } : {}) };
    });
  });
  const items = tagLists.flat();
  cache.entries.clear();

  let fetched = 0;
  let reused = 0;
  let skipped = 0;
  let v0Names = 0;
  const readProgress = progressOf(items.length);
  let done = 0;
  const artifacts = await mapLimit(items, concurrency, async (item): Promise<CachedArtifact | undefined> => {
    try {
      return await readOrReuse(item);
    } finally {
      readProgress?.(`${subdir}: records`, ++done, items.length, 'items');
    }
  });

  async function readOrReuse(item: WorkItem): Promise<CachedArtifact | undefined> {
    try {
      if (item.cached) {
        if (!options.verify) {
          reused++;
          return item.cached;
        }
        const now = await store.repository(item.repository.name).resolve(item.tag);
        if (now?.digest === item.cached.digest) {
          reused++;
          return item.cached;
        }
        if (!now) throw new NotFoundError(`${item.repository.name}:${item.tag} is gone`);
        reporter.warn(
          `${item.repository.name}:${item.tag} moved from ${item.cached.digest} to ${now.digest}`,
        );
      }
      const artifact = await readArtifact(store, channel, item, reporter);
      fetched++;
      return artifact;
    } catch (err) {
      if (err instanceof V0Name) {
        v0Names++;
        return undefined;
      }
      if (!isMalformed(err)) throw err;
      skipped++;
      reporter.warn(`left out of ${subdir} repodata: ${describeError(err)}`);
      return undefined;
    }
  }

  // One record per file name: a second artifact claiming the same file is left out.
  const byFile = new Map<string, CachedArtifact>();
  for (const artifact of artifacts) {
    if (!artifact) continue;
    const first = byFile.get(artifact.fileName);
    if (first) {
      skipped++;
      reporter.warn(
        `${subdir}/${artifact.fileName} is stored twice (${first.component}:${first.tag} and ${artifact.component}:${artifact.tag}); the second is left out`,
      );
      continue;
    }
    byFile.set(artifact.fileName, artifact);
  }
  const kept = [...byFile.values()];
  if (options.cacheDir) {
    try {
      await saveCache(options.cacheDir, channelId, subdir, kept);
    } catch (err) {
      reporter.warn(`cache: cannot save: ${describeError(err)}`);
    }
  }

  const fromPackages: RepodataEntry[] = kept.map((a) => ({ fileName: a.fileName, json: a.record }));
  const patched = instructions
    ? applyPatchInstructions(fromPackages, instructions)
    : { entries: fromPackages, removed: [] as string[] };
  const publications: Publication[] = [
    { kind: METADATA_KINDS.repodataFromPackages, subdir, json: encodeRepodata(subdir, fromPackages) },
    { kind: METADATA_KINDS.repodata, subdir, json: encodeRepodata(subdir, patched.entries, patched.removed) },
    {
      kind: METADATA_KINDS.currentRepodata,
      subdir,
      json: encodeCurrentRepodata(subdir, patched.entries, patched.removed),
    },
    {
      kind: METADATA_KINDS.runExports,
      subdir,
      json: encodeRunExports(
        subdir,
        kept.map((a) => ({ fileName: a.fileName, runExports: parseJsonText(a.runExports) })),
      ),
    },
  ];
  if (instructions) {
    publications.push({
      kind: METADATA_KINDS.patchInstructions,
      subdir,
      json: new TextEncoder().encode(canonicalStringify(instructions)),
    });
  }
  reporter.info(
    `${subdir}: ${kept.length} record(s) (${fetched} read, ${reused} from the cache, ${skipped} left out` +
      (v0Names ? `, ${v0Names} v0 name(s) passed over` : '') +
      ')' +
      (instructions ? `, ${patched.removed.length} removed by patch instructions` : ''),
  );
  const results: ArtifactResult[] = [];
  for (const publication of publications) results.push(await publish(publication, publishing));
  const copies = (options.naming ?? NAMING_V1).repodataCopies(subdir);
  if (copies.length)
    results.push(
      ...(await publishV0(
        subdir,
        copies,
        results.find((r) => r.file === METADATA_KINDS.repodata.fileName)!,
        publishing,
      )),
    );

  const extras = new Map(kept.map((a) => [a.fileName, a]));
  const channeldata = updateChanneldata(
    emptyChanneldata(),
    subdir,
    patched.entries.map((entry) => {
      const extra = extras.get(entry.fileName);
      return {
        fileName: entry.fileName,
        record: entry.json,
        runExports: extra?.runExports,
        about: extra?.about,
        postInstall: extra?.postInstall,
      };
    }),
  );
  return {
    results,
    channeldata,
    counts: { records: kept.length, fetched, cached: reused, skipped },
  };
}

async function readCurrentChanneldata(
  store: Store,
  channel: Channel,
  reporter: Reporter,
): Promise<Channeldata> {
  const kind = METADATA_KINDS.channeldata;
  const name = channelRepository(channel, kind.component);
  const repository = store.repository(name);
  const current = await currentJsonLayer(
    repository,
    kind,
    formatReference(channel, name, LATEST_TAG),
    reporter,
  );
  if (!current) return emptyChanneldata();
  const bytes = await repository.readBlob(
    { digest: current.jsonLayer.digest as Digest, size: current.jsonLayer.size },
    CHANNELDATA_LIMIT,
  );
  try {
    return parseChanneldata(JSON.parse(new TextDecoder().decode(bytes)));
  } catch {
    reporter.warn(`${name}:${LATEST_TAG} is not JSON; channeldata is rebuilt from the subdirs indexed now`);
    return emptyChanneldata();
  }
}

interface HttpCounters {
  requests: number;
  bytesReceived: number;
  bytesSent: number;
}

/** The store's wire counters, copied (they keep counting). */
function httpCounters(store: Store): HttpCounters | undefined {
  const stats = store.stats();
  return stats && { ...stats };
}

export async function repodata(options: RepodataOptions, context: RepodataContext): Promise<CommandResult> {
  const { store, reporter } = context;
  const channel = options.channel;
  const requested = options.subdirs?.length
    ? [...new Set(options.subdirs.map(checkSubdir))].sort()
    : undefined;
  const instructionsFor = options.patchInstructions
    ? await loadPatchInstructions(options.patchInstructions)
    : undefined;
  const before = httpCounters(store);
  const publishing: PublishContext = {
    store,
    channel,
    tag: timestampTag(context.now?.() ?? new Date()),
    levels: options.compression ?? {},
    memo: new Map(),
    reporter,
  };

  const repositories = await packageRepositories(store, channel);
  const bySubdir = new Map<string, PackageRepository[]>();
  for (const repository of repositories) {
    const list = bySubdir.get(repository.subdir);
    if (list) list.push(repository);
    else bySubdir.set(repository.subdir, [repository]);
  }
  const subdirs = requested ?? [...new Set([...bySubdir.keys(), 'noarch'])].sort();
  reporter.info(
    `Indexing ${subdirs.join(', ')} of ${channelUrl(channel)} (${repositories.length} package repositories in the channel)`,
  );

  const results: ArtifactResult[] = [];
  const totals = { records: 0, fetched: 0, cached: 0, skipped: 0 };
  let ours = emptyChanneldata();
  const indexed: string[] = [];
  for (const subdir of subdirs) {
    try {
      const outcome = await indexSubdir(
        subdir,
        (bySubdir.get(subdir) ?? []).sort((a, b) => (a.name < b.name ? -1 : 1)),
        options,
        context,
        instructionsFor,
        publishing,
      );
      results.push(...outcome.results);
      for (const key of Object.keys(totals) as (keyof typeof totals)[]) totals[key] += outcome.counts[key];
      if (outcome.channeldata) {
        ours = mergeChanneldata(ours, outcome.channeldata);
        indexed.push(subdir);
      }
    } catch (err) {
      const error = describeError(err);
      reporter.warn(`${subdir}: ${error}`);
      results.push({ subdir, file: METADATA_KINDS.repodata.fileName, status: 'failed', error });
    }
  }

  if (indexed.length > 0) {
    try {
      // A run over every subdir rebuilds channeldata; a run over some (one job per subdir)
      // replaces their part of the current one, read as late as possible to narrow the window
      // in which two jobs could overwrite each other.
      const complete = requested === undefined && indexed.length === subdirs.length;
      const base = complete
        ? emptyChanneldata()
        : withoutSubdirs(await readCurrentChanneldata(store, channel, reporter), indexed);
      const channeldata = mergeChanneldata(base, ours);
      results.push(
        await publish({ kind: METADATA_KINDS.channeldata, json: encodeChanneldata(channeldata) }, publishing),
      );
    } catch (err) {
      const error = describeError(err);
      reporter.warn(`channeldata.json: ${error}`);
      results.push({ subdir: '', file: METADATA_KINDS.channeldata.fileName, status: 'failed', error });
    }
  }

  const after = httpCounters(store);
  const counters: Record<string, number> = { ...totals };
  if (before && after) {
    counters.requests = after.requests - before.requests;
    counters.bytesReceived = after.bytesReceived - before.bytesReceived;
    counters.bytesSent = after.bytesSent - before.bytesSent;
  }
  return finish('repodata', { channel: channelUrl(channel) }, results, counters);
}
