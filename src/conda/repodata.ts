/**
 * Repodata from package records (SPEC §5), as conda-index writes it, with deterministic bytes:
 *
 * - `repodata_from_packages.json`: every record (index.json plus md5, sha256, size), `.conda` under
 *   `packages.conda`, `.tar.bz2` under `packages`; keys sorted at every level, records in file-name
 *   order, no whitespace. An unchanged channel gives identical bytes.
 * - `repodata.json`: the same after conda-forge's repodata patch instructions, applied the way
 *   conda-index applies them (`_apply_instructions`).
 * - `current_repodata.json`: the newest version of each name plus what those need, the way
 *   conda-index's `build_current_repodata` selects it.
 * - `run_exports.json` (CEP-12, conda-index's layout) and `channeldata.json`.
 *
 * Records are kept as canonical JSON strings and the big outputs are assembled piece by piece, so
 * memory follows the records' own size, and no output has to fit into one JavaScript string.
 * Everything here is pure.
 */
import { byCodeUnit, canonicalStringify } from '../util/canonical-json.js';
import { parseMatchSpec, type MatchSpec } from './match-spec.js';
import { tryParseVersion, type Version } from './version.js';

export const REPODATA_VERSION = 1;
export const RUN_EXPORTS_VERSION = 1;
export const CHANNELDATA_VERSION = 1;
/** conda-index refuses patch instructions of a later version. */
export const PATCH_INSTRUCTIONS_VERSION = 1;

export type Json = null | boolean | number | string | Json[] | JsonObject;
export interface JsonObject {
  [key: string]: Json;
}

export type RepodataSection = 'packages' | 'packages.conda';

export class PatchInstructionsError extends Error {
  override readonly name = 'PatchInstructionsError';
}

// ---------------------------------------------------------------------------------------------
// Canonical JSON

function isObject(value: unknown): value is JsonObject {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Collects output in pieces and hands back one buffer, never one giant string. */
class ByteWriter {
  private readonly buffers: Buffer[] = [];
  private pending: string[] = [];
  private pendingLength = 0;

  write(text: string): void {
    this.pending.push(text);
    this.pendingLength += text.length;
    if (this.pendingLength > 1 << 20) this.flush();
  }

  private flush(): void {
    if (this.pending.length === 0) return;
    this.buffers.push(Buffer.from(this.pending.join(''), 'utf8'));
    this.pending = [];
    this.pendingLength = 0;
  }

  bytes(): Uint8Array {
    this.flush();
    const all = Buffer.concat(this.buffers);
    return new Uint8Array(all.buffer, all.byteOffset, all.length);
  }
}

// ---------------------------------------------------------------------------------------------
// Records

/** A record of one artifact: its file name and the record as canonical JSON. */
export interface RepodataEntry {
  fileName: string;
  json: string;
}

export function sectionOf(fileName: string): RepodataSection | undefined {
  if (fileName.endsWith('.conda')) return 'packages.conda';
  if (fileName.endsWith('.tar.bz2')) return 'packages';
  return undefined;
}

export interface PackageSums {
  sha256: string;
  md5?: string | undefined;
  size: number;
}

/** The repodata record of a package: its index.json plus md5, sha256 and size. */
export function packageRecord(index: JsonObject, sums: PackageSums): JsonObject {
  const record: JsonObject = { ...index, sha256: sums.sha256, size: sums.size };
  if (sums.md5 !== undefined) record.md5 = sums.md5;
  else delete record.md5;
  return record;
}

export function repodataEntry(fileName: string, record: JsonObject): RepodataEntry {
  return { fileName, json: canonicalStringify(record) };
}

function sortedEntries(entries: readonly RepodataEntry[]): RepodataEntry[] {
  return [...entries].sort((a, b) => byCodeUnit(a.fileName, b.fileName));
}

function writeSections(
  out: ByteWriter,
  entries: readonly RepodataEntry[],
  value: (entry: RepodataEntry) => string,
): void {
  const sorted = sortedEntries(entries);
  for (const section of ['packages', 'packages.conda'] as const) {
    out.write(`${JSON.stringify(section)}:{`);
    let first = true;
    for (const entry of sorted) {
      if (sectionOf(entry.fileName) !== section) continue;
      out.write(`${first ? '' : ','}${JSON.stringify(entry.fileName)}:${value(entry)}`);
      first = false;
    }
    out.write(section === 'packages' ? '},' : '}');
  }
}

/** `repodata.json` bytes: `{"info":{"subdir"},"packages":…,"packages.conda":…,"removed":…,"repodata_version":1}`. */
export function encodeRepodata(
  subdir: string,
  entries: readonly RepodataEntry[],
  removed: readonly string[] = [],
): Uint8Array {
  const out = new ByteWriter();
  out.write(`{"info":${canonicalStringify({ subdir })},`);
  writeSections(out, entries, (e) => e.json);
  out.write(`,"removed":${canonicalStringify(removed)},"repodata_version":${REPODATA_VERSION}}`);
  return out.bytes();
}

// ---------------------------------------------------------------------------------------------
// Patch instructions (conda-forge's repodata-patches format)

export interface PatchInstructions {
  patch_instructions_version?: number;
  packages?: Record<string, JsonObject | null>;
  'packages.conda'?: Record<string, JsonObject | null>;
  remove?: string[];
  revoke?: string[];
  [key: string]: unknown;
}

/** Checks the shape of a patch instructions document; throws PatchInstructionsError. */
export function checkPatchInstructions(value: unknown, what: string): PatchInstructions {
  const fail = (problem: string): never => {
    throw new PatchInstructionsError(`${what}: ${problem}`);
  };
  if (!isObject(value)) fail('patch instructions must be a JSON object');
  const doc = value as JsonObject;
  const version = doc.patch_instructions_version;
  if (version !== undefined) {
    if (typeof version !== 'number' || !Number.isInteger(version) || version < 0)
      fail('patch_instructions_version must be a whole number');
    if ((version as number) > PATCH_INSTRUCTIONS_VERSION)
      fail(
        `patch_instructions_version ${String(version)} is newer than the supported ${PATCH_INSTRUCTIONS_VERSION}`,
      );
  }
  for (const section of ['packages', 'packages.conda'] as const) {
    const patches = doc[section];
    if (patches === undefined) continue;
    if (!isObject(patches)) fail(`"${section}" must map file names to record changes`);
    for (const [fn, change] of Object.entries(patches as JsonObject)) {
      if (change !== null && !isObject(change)) fail(`"${section}"."${fn}" must be an object (or null)`);
    }
  }
  for (const list of ['remove', 'revoke'] as const) {
    const names = doc[list];
    if (names === undefined) continue;
    if (!Array.isArray(names) || names.some((n) => typeof n !== 'string'))
      fail(`"${list}" must be a list of file names`);
  }
  return doc;
}

function cloneJson<T extends Json>(value: T): T {
  return structuredClone(value);
}

function jsonEqual(a: Json | undefined, b: Json | undefined): boolean {
  return canonicalStringify(a) === canonicalStringify(b);
}

/**
 * conda-index's merge without list merging: objects are merged key by key, lists and scalars
 * replace, a null deletes the key (or, where the key is missing, sets it to null, as conda-index
 * does). At the top level (file names) only existing keys are touched.
 */
function mergeRecordPatch(base: JsonObject, patch: JsonObject): void {
  if (jsonEqual(base, patch)) return;
  for (const [key, value] of Object.entries(patch)) {
    if (isObject(value)) {
      const current = base[key];
      if (isObject(current)) mergeRecordPatch(current, value);
      else base[key] = cloneJson(value);
    } else if (value === null && key in base) {
      delete base[key];
    } else {
      base[key] = cloneJson(value);
    }
  }
}

export interface PatchedRepodata {
  entries: RepodataEntry[];
  /** File names removed by the instructions, sorted. */
  removed: string[];
}

/**
 * Applies patch instructions as conda-index does: `packages` changes apply to `.tar.bz2` records
 * and, renamed to `.conda`, to `.conda` records; then `packages.conda` changes; then `revoke`
 * (sets `revoked: true` and adds the unsatisfiable dependency `package_has_been_revoked`); then
 * `remove` (drops the record and lists its file name under `removed`). A `.tar.bz2` name in
 * `revoke` or `remove` also names the `.conda` of the same package.
 */
export function applyPatchInstructions(
  entries: readonly RepodataEntry[],
  instructions: PatchInstructions,
): PatchedRepodata {
  const byName = new Map(entries.map((e) => [e.fileName, e]));
  const parsed = new Map<string, JsonObject>();
  const deleted = new Set<string>();
  const record = (fn: string, section: RepodataSection): JsonObject | undefined => {
    if (deleted.has(fn) || sectionOf(fn) !== section) return undefined;
    let value = parsed.get(fn);
    if (value === undefined) {
      const entry = byName.get(fn);
      if (!entry) return undefined;
      value = JSON.parse(entry.json) as JsonObject;
      parsed.set(fn, value);
    }
    return value;
  };
  const patchSection = (section: RepodataSection, patches: Iterable<[string, JsonObject | null]>) => {
    for (const [fn, change] of patches) {
      const target = record(fn, section);
      if (!target) continue;
      if (change === null) deleted.add(fn);
      else mergeRecordPatch(target, change);
    }
  };
  const toConda = (fn: string) => fn.replaceAll('.tar.bz2', '.conda');
  const legacyPatches = Object.entries(instructions.packages ?? {});
  patchSection('packages', legacyPatches);
  patchSection(
    'packages.conda',
    legacyPatches.map(([fn, change]) => [toConda(fn), change] as [string, JsonObject | null]),
  );
  patchSection('packages.conda', Object.entries(instructions['packages.conda'] ?? {}));

  const both = (fn: string): [string, RepodataSection][] => [
    [fn, 'packages'],
    [fn.endsWith('.tar.bz2') ? toConda(fn) : fn, 'packages.conda'],
  ];
  for (const name of instructions.revoke ?? []) {
    for (const [fn, section] of both(name)) {
      const target = record(fn, section);
      if (!target) continue;
      target.revoked = true;
      const depends = Array.isArray(target.depends) ? target.depends : [];
      depends.push('package_has_been_revoked');
      target.depends = depends;
    }
  }
  const removed: string[] = [];
  for (const name of instructions.remove ?? []) {
    for (const [fn, section] of both(name)) {
      if (!record(fn, section)) continue;
      deleted.add(fn);
      removed.push(fn);
    }
  }
  removed.sort(byCodeUnit);

  const patched: RepodataEntry[] = [];
  for (const entry of entries) {
    if (deleted.has(entry.fileName)) continue;
    const value = parsed.get(entry.fileName);
    patched.push(value ? repodataEntry(entry.fileName, value) : entry);
  }
  return { entries: patched, removed };
}

// ---------------------------------------------------------------------------------------------
// current_repodata.json

interface Candidate {
  fileName: string;
  name: string;
  version: string;
  parsedVersion: Version | undefined;
  build: string;
  build_number: number;
  /** Seconds since the epoch (conda reads milliseconds as seconds / 1000). */
  timestamp: number;
  depends: string[];
  hasFeatures: boolean;
}

function featureList(value: Json | undefined): string[] {
  if (typeof value === 'string') return value.split(/[\s,]+/).filter(Boolean);
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string' && v !== '');
  return [];
}

export function timestampSeconds(value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) return 0;
  return value > 253402300799 ? value / 1000 : value;
}

function candidateOf(entry: RepodataEntry): Candidate | undefined {
  const record = JSON.parse(entry.json) as JsonObject;
  if (typeof record.name !== 'string' || typeof record.version !== 'string') return undefined;
  return {
    fileName: entry.fileName,
    name: record.name,
    version: record.version,
    parsedVersion: tryParseVersion(record.version),
    build: typeof record.build === 'string' ? record.build : '',
    build_number: typeof record.build_number === 'number' ? record.build_number : 0,
    timestamp: timestampSeconds(record.timestamp),
    depends: Array.isArray(record.depends)
      ? record.depends.filter((d): d is string => typeof d === 'string')
      : [],
    hasFeatures: featureList(record.track_features).length > 0 || featureList(record.features).length > 0,
  };
}

/** conda's solver order within a name: version, build number, timestamp, build string; newest first. */
function newestFirst(a: Candidate, b: Candidate): number {
  if (a.parsedVersion && b.parsedVersion) {
    const c = b.parsedVersion.compare(a.parsedVersion);
    if (c !== 0) return c;
  } else if (a.parsedVersion || b.parsedVersion) {
    return a.parsedVersion ? -1 : 1;
  }
  return (
    b.build_number - a.build_number ||
    b.timestamp - a.timestamp ||
    byCodeUnit(b.build, a.build) ||
    byCodeUnit(a.fileName, b.fileName)
  );
}

function groupByName(candidates: Iterable<Candidate>): Map<string, Candidate[]> {
  const groups = new Map<string, Candidate[]>();
  for (const c of candidates) {
    const group = groups.get(c.name);
    if (group) group.push(c);
    else groups.set(c.name, [c]);
  }
  for (const group of groups.values()) group.sort(newestFirst);
  return groups;
}

/** The records of `group` that `name=<version>` matches (the version and its extensions). */
function sameVersion(group: readonly Candidate[], version: string): Candidate[] {
  const prefix = tryParseVersion(version);
  if (!prefix) return group.filter((c) => c.version === version);
  return group.filter((c) => c.parsedVersion?.startsWith(prefix));
}

function findMatches(groups: Map<string, Candidate[]>, spec: MatchSpec): Candidate[] {
  return (groups.get(spec.name) ?? []).filter((c) => spec.matches(c));
}

/**
 * The file names current_repodata.json keeps, chosen as conda-index does: for each name every
 * record of its newest version; then, for each dependency of those that nothing chosen satisfies,
 * every record of the newest version that satisfies it (one level, not transitively); then, for
 * names whose chosen records carry (track_)features, the newest record without features that is
 * not newer than the chosen ones. Specs that cannot be parsed are ignored.
 */
export function currentRepodataSelection(entries: readonly RepodataEntry[]): Set<string> {
  const candidates = entries.map(candidateOf).filter((c): c is Candidate => c !== undefined);
  const all = groupByName(candidates);

  const newest = new Set<Candidate>();
  for (const group of all.values()) for (const c of sameVersion(group, group[0]!.version)) newest.add(c);
  const newestGroups = groupByName(newest);

  const withDeps = new Set(newest);
  const seen = new Set<string>();
  for (const group of newestGroups.values()) {
    for (const record of group) {
      for (const dep of record.depends) {
        if (seen.has(dep)) continue;
        seen.add(dep);
        let spec: MatchSpec;
        try {
          spec = parseMatchSpec(dep);
        } catch {
          continue;
        }
        if (spec.name === '*' || findMatches(newestGroups, spec).length > 0) continue;
        const matches = findMatches(all, spec);
        if (matches.length === 0) continue;
        for (const c of sameVersion(all.get(spec.name)!, matches[0]!.version)) withDeps.add(c);
      }
    }
  }

  const selected = new Set(withDeps);
  for (const [name, group] of groupByName(withDeps)) {
    if (!group.some((c) => c.hasFeatures)) continue;
    const latest = group[0]!.parsedVersion;
    const fallback = all
      .get(name)!
      .find(
        (c) =>
          !c.hasFeatures &&
          (latest === undefined || c.parsedVersion === undefined || c.parsedVersion.compare(latest) <= 0),
      );
    if (fallback) selected.add(fallback);
  }
  return new Set([...selected].map((c) => c.fileName));
}

/**
 * `current_repodata.json` bytes from the (patched) records. A kept `.conda` whose `.tar.bz2`
 * twin is in the repodata gets that one's md5 as `legacy_bz2_md5`, as conda-index does (which
 * writes null when there is no twin; the key is left out here instead).
 */
export function encodeCurrentRepodata(
  subdir: string,
  entries: readonly RepodataEntry[],
  removed: readonly string[] = [],
): Uint8Array {
  const keep = currentRepodataSelection(entries);
  const byName = new Map(entries.map((e) => [e.fileName, e]));
  const kept: RepodataEntry[] = [];
  for (const entry of entries) {
    if (!keep.has(entry.fileName)) continue;
    if (sectionOf(entry.fileName) === 'packages.conda') {
      const twin = byName.get(`${entry.fileName.slice(0, -'.conda'.length)}.tar.bz2`);
      const md5 = twin ? (JSON.parse(twin.json) as JsonObject).md5 : undefined;
      if (typeof md5 === 'string') {
        const record = JSON.parse(entry.json) as JsonObject;
        record.legacy_bz2_md5 = md5;
        kept.push(repodataEntry(entry.fileName, record));
        continue;
      }
    }
    kept.push(entry);
  }
  return encodeRepodata(subdir, kept, removed);
}

// ---------------------------------------------------------------------------------------------
// run_exports.json

export interface RunExportsEntry {
  fileName: string;
  /** The package's info/run_exports.json, or undefined when it has none (written as `{}`). */
  runExports: Json | undefined;
}

/** `run_exports.json` as conda-index writes it: every package, `{}` where it exports nothing. */
export function encodeRunExports(subdir: string, entries: readonly RunExportsEntry[]): Uint8Array {
  const out = new ByteWriter();
  out.write(`{"info":${canonicalStringify({ subdir, version: RUN_EXPORTS_VERSION })},`);
  const byName = new Map(entries.map((e) => [e.fileName, e.runExports]));
  writeSections(
    out,
    entries.map((e) => ({ fileName: e.fileName, json: '' })),
    (e) => `{"run_exports":${canonicalStringify(byName.get(e.fileName) ?? {})}}`,
  );
  out.write('}');
  return out.bytes();
}

// ---------------------------------------------------------------------------------------------
// channeldata.json

/** Fields of info/about.json that channeldata carries. */
export const ABOUT_FIELDS = [
  'description',
  'dev_url',
  'doc_url',
  'doc_source_url',
  'home',
  'license',
  'summary',
  'icon_url',
  'icon_hash',
  'tags',
  'identifiers',
  'keywords',
  'recipe_origin',
] as const;

/** Newer values win for these (conda-index's list). */
const NEWER_WINS = [
  'description',
  'dev_url',
  'doc_url',
  'doc_source_url',
  'home',
  'license',
  'source_url',
  'source_git_url',
  'summary',
  'icon_url',
  'icon_hash',
  'tags',
  'identifiers',
  'keywords',
  'recipe_origin',
  'version',
] as const;

/** What a package's install does, read from info/paths.json (conda-index's post_install). */
export const POST_INSTALL_FIELDS = [
  'binary_prefix',
  'text_prefix',
  'activate.d',
  'deactivate.d',
  'pre_link',
  'post_link',
  'pre_unlink',
] as const;

export type PostInstall = Partial<Record<(typeof POST_INSTALL_FIELDS)[number], boolean>>;

export interface Channeldata {
  channeldata_version: number;
  packages: Record<string, JsonObject>;
  subdirs: string[];
}

/**
 * One package of a subdir for channeldata: the (patched) record and what the info layer gave,
 * as JSON texts. Only the newest build of each name and version is parsed whole.
 */
export interface ChanneldataInput {
  fileName: string;
  /** The (patched) repodata record, JSON. */
  record: string;
  /** info/run_exports.json, JSON. */
  runExports?: string | undefined;
  /** Channeldata fields of info/about.json, JSON. */
  about?: string | undefined;
  /** Prefix and link-script flags, JSON. */
  postInstall?: string | undefined;
}

function parseText<T>(text: string | undefined): T | undefined {
  return text === undefined ? undefined : (JSON.parse(text) as T);
}

function oneLine(value: Json | undefined): Json | undefined {
  if (typeof value === 'string') return value.trim().replace(/\n/g, ' ');
  if (Array.isArray(value) && value.every((v) => typeof v === 'string'))
    return value.join('').trim().replace(/\n/g, ' ');
  return value;
}

function versionIsNewer(a: string, b: string): boolean {
  const va = tryParseVersion(a);
  const vb = tryParseVersion(b);
  return va !== undefined && vb !== undefined && va.compare(vb) > 0;
}

function truthy(value: Json | undefined): boolean {
  if (Array.isArray(value)) return value.length > 0;
  if (isObject(value)) return Object.keys(value).length > 0;
  return Boolean(value);
}

/** An empty channeldata document. */
export function emptyChanneldata(): Channeldata {
  return { channeldata_version: CHANNELDATA_VERSION, packages: {}, subdirs: [] };
}

/** Reads a channeldata document back (from the channel's current `channeldata.json`). */
export function parseChanneldata(value: unknown): Channeldata {
  if (!isObject(value) || !isObject(value.packages)) return emptyChanneldata();
  const packages: Record<string, JsonObject> = {};
  for (const [name, pkg] of Object.entries(value.packages)) if (isObject(pkg)) packages[name] = pkg;
  const subdirs = Array.isArray(value.subdirs)
    ? value.subdirs.filter((s): s is string => typeof s === 'string')
    : [];
  return { channeldata_version: CHANNELDATA_VERSION, packages, subdirs };
}

/**
 * Takes subdirs out of a channeldata document before they are computed again: they leave every
 * package's `subdirs` and the channel's, and packages left in no subdir go.
 */
export function withoutSubdirs(channeldata: Channeldata, subdirs: readonly string[]): Channeldata {
  const gone = new Set(subdirs);
  const packages: Record<string, JsonObject> = {};
  for (const [name, pkg] of Object.entries(channeldata.packages)) {
    const left = Array.isArray(pkg.subdirs)
      ? pkg.subdirs.filter((s) => typeof s === 'string' && !gone.has(s))
      : [];
    if (left.length > 0) packages[name] = { ...pkg, subdirs: left };
  }
  return { ...channeldata, packages, subdirs: channeldata.subdirs.filter((s) => !gone.has(s)) };
}

/**
 * Folds one subdir's records into channeldata, as conda-index's `_update_channeldata`: per name
 * and version the record with the newest timestamp; per name, descriptive fields from the newest
 * version (or wherever the newer one lacks them), link and prefix flags if any build has them,
 * the subdirs, and run_exports per version. (conda-index takes the package's timestamp from the
 * last group it happens to process; here it is the newest one.)
 */
export function updateChanneldata(
  channeldata: Channeldata,
  subdir: string,
  inputs: readonly ChanneldataInput[],
): Channeldata {
  const packages: Record<string, JsonObject> = { ...channeldata.packages };
  const condaStems = new Set(
    inputs.filter((i) => i.fileName.endsWith('.conda')).map((i) => i.fileName.slice(0, -'.conda'.length)),
  );
  const usable = inputs
    .filter(
      (i) => !(i.fileName.endsWith('.tar.bz2') && condaStems.has(i.fileName.slice(0, -'.tar.bz2'.length))),
    )
    .sort((a, b) => {
      const sa = sectionOf(a.fileName) === 'packages.conda' ? 0 : 1;
      const sb = sectionOf(b.fileName) === 'packages.conda' ? 0 : 1;
      return sa - sb || byCodeUnit(a.fileName, b.fileName);
    });
  const newestPerVersion = new Map<string, { input: ChanneldataInput; timestamp: number }>();
  for (const input of usable) {
    const { name, version, timestamp } = JSON.parse(input.record) as JsonObject;
    if (typeof name !== 'string' || typeof version !== 'string') continue;
    const key = `${name}\u0000${version}`;
    const ts = typeof timestamp === 'number' ? timestamp : 0;
    const current = newestPerVersion.get(key);
    if (!current || current.timestamp < ts) newestPerVersion.set(key, { input, timestamp: ts });
  }
  for (const { input } of newestPerVersion.values()) {
    const details = {
      record: JSON.parse(input.record) as JsonObject,
      runExports: parseText<Json>(input.runExports),
      about: parseText<JsonObject>(input.about),
      postInstall: parseText<PostInstall>(input.postInstall),
    };
    const data: JsonObject = { ...details.about, ...details.postInstall, ...details.record };
    for (const field of ['description', 'summary'] as const) {
      const flat = oneLine(data[field]);
      if (flat !== undefined) data[field] = flat;
    }
    const name = details.record.name as string;
    const existing: JsonObject = { ...(packages[name] ?? {}) };
    const dataVersion = typeof data.version === 'string' ? data.version : '0';
    const existingVersion = typeof existing.version === 'string' ? existing.version : '0';
    const dataNewer =
      versionIsNewer(dataVersion, existingVersion) ||
      (dataVersion === existingVersion &&
        timestampSeconds(data.timestamp) > timestampSeconds(existing.timestamp));
    const next: JsonObject = { ...existing };
    for (const field of NEWER_WINS) {
      const value = data[field];
      if (truthy(value) && (dataNewer || !truthy(existing[field]))) next[field] = value!;
    }
    for (const field of POST_INSTALL_FIELDS) next[field] = truthy(data[field]) || truthy(existing[field]);
    const subdirs = Array.isArray(existing.subdirs) ? (existing.subdirs as string[]) : [];
    next.subdirs = [...new Set([...subdirs, subdir])].sort(byCodeUnit);
    const runExports: JsonObject = isObject(existing.run_exports) ? { ...existing.run_exports } : {};
    if (truthy(details.runExports)) runExports[dataVersion] = details.runExports!;
    next.run_exports = runExports;
    next.timestamp = Math.max(
      Math.trunc(timestampSeconds(data.timestamp)),
      typeof existing.timestamp === 'number' ? existing.timestamp : 0,
    );
    packages[name] = next;
  }
  return {
    channeldata_version: CHANNELDATA_VERSION,
    packages,
    subdirs: [...new Set([...channeldata.subdirs, subdir])].sort(byCodeUnit),
  };
}

/**
 * Merges the channeldata computed from some subdirs into the channel's current one (with those
 * subdirs already taken out, see `withoutSubdir`), by the rules of `updateChanneldata`.
 */
export function mergeChanneldata(base: Channeldata, ours: Channeldata): Channeldata {
  const packages: Record<string, JsonObject> = { ...base.packages };
  for (const [name, mine] of Object.entries(ours.packages)) {
    const theirs = packages[name];
    if (!theirs) {
      packages[name] = mine;
      continue;
    }
    const myVersion = typeof mine.version === 'string' ? mine.version : '0';
    const theirVersion = typeof theirs.version === 'string' ? theirs.version : '0';
    const mineNewer =
      versionIsNewer(myVersion, theirVersion) ||
      (myVersion === theirVersion && timestampSeconds(mine.timestamp) > timestampSeconds(theirs.timestamp));
    const next: JsonObject = { ...theirs };
    for (const field of NEWER_WINS) {
      if (truthy(mine[field]) && (mineNewer || !truthy(theirs[field]))) next[field] = mine[field]!;
    }
    for (const field of POST_INSTALL_FIELDS) next[field] = truthy(mine[field]) || truthy(theirs[field]);
    const subdirs = [mine.subdirs, theirs.subdirs].flatMap((s) => (Array.isArray(s) ? (s as string[]) : []));
    next.subdirs = [...new Set(subdirs)].sort(byCodeUnit);
    next.run_exports = {
      ...(isObject(theirs.run_exports) ? theirs.run_exports : {}),
      ...(isObject(mine.run_exports) ? mine.run_exports : {}),
    };
    next.timestamp = Math.max(
      typeof mine.timestamp === 'number' ? mine.timestamp : 0,
      typeof theirs.timestamp === 'number' ? theirs.timestamp : 0,
    );
    packages[name] = next;
  }
  return {
    channeldata_version: CHANNELDATA_VERSION,
    packages,
    subdirs: [...new Set([...base.subdirs, ...ours.subdirs])].sort(byCodeUnit),
  };
}

/** `channeldata.json` bytes, without null values and without `commits` (as conda-index writes it). */
export function encodeChanneldata(channeldata: Channeldata): Uint8Array {
  const packages: Record<string, JsonObject> = {};
  for (const [name, pkg] of Object.entries(channeldata.packages)) {
    const clean: JsonObject = {};
    for (const [key, value] of Object.entries(pkg))
      if (value !== null && key !== 'commits') clean[key] = value;
    packages[name] = clean;
  }
  return new TextEncoder().encode(
    canonicalStringify({
      channeldata_version: channeldata.channeldata_version,
      packages,
      subdirs: channeldata.subdirs,
    }),
  );
}

/** What info/paths.json says about installing the package (conda-index's post_install.json). */
export function postInstallFromPaths(paths: unknown): PostInstall {
  const flags: Required<PostInstall> = {
    binary_prefix: false,
    text_prefix: false,
    'activate.d': false,
    'deactivate.d': false,
    pre_link: false,
    post_link: false,
    pre_unlink: false,
  };
  const list = isObject(paths) && Array.isArray(paths.paths) ? paths.paths : [];
  for (const entry of list) {
    if (!isObject(entry) || typeof entry._path !== 'string') continue;
    const path = entry._path;
    if (entry.prefix_placeholder) {
      if (entry.file_mode === 'binary') flags.binary_prefix = true;
      else if (entry.file_mode === 'text') flags.text_prefix = true;
    }
    for (const dir of ['activate.d', 'deactivate.d'] as const)
      if (path.startsWith(`etc/conda/${dir}`)) flags[dir] = true;
    for (const [script, field] of [
      ['pre-link', 'pre_link'],
      ['post-link', 'post_link'],
      ['pre-unlink', 'pre_unlink'],
    ] as const) {
      if (new RegExp(`/\\..*-${script}\\.`).test(path)) flags[field] = true;
    }
  }
  return flags;
}
