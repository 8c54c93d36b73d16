/**
 * What validate proves about the staged bytes (README "Security"): the manifest and every blob it
 * names are exactly the canonical artifact rebuilt from the package file, which is downloaded
 * and hashed (the registry is not trusted). Upload is deterministic, so this is byte equality;
 * the only parts not derived from the package are the provenance annotations (source, revision),
 * which requester.ts checks against the proven identity.
 */
import { buildPackageArtifact, type PackageManifestInfo } from '../conda/artifact.js';
import { parseArtifactFileName } from '../conda/naming.js';
import { DEFAULT_LIMITS, PackageError, readPackage, type PackageContents } from '../conda/package-reader.js';
import { digestHex, digestOf } from '../oci/digest.js';
import { DigestMismatchError, SizeLimitError } from '../oci/errors.js';
import type { Descriptor } from '../oci/manifest.js';
import { ANNOTATION_REVISION, ANNOTATION_SOURCE } from '../oci/media-types.js';
import type { FetchedManifest, Repository } from '../oci/storage.js';
import { describeError } from '../util/describe-error.js';
import type { RequestedArtifact } from './artifact-list.js';
import type { Check } from './report.js';

/** Runs checks in order; a failed check stops those that depend on it. */
export class CheckList {
  readonly checks: Check[] = [];
  pass(name: string, detail: string): void {
    this.checks.push({ name, ok: true, detail });
  }
  fail(name: string, detail: string): void {
    this.checks.push({ name, ok: false, detail });
  }
  expect(name: string, ok: boolean, passDetail: string, failDetail: string): boolean {
    this.checks.push({ name, ok, detail: ok ? passDetail : failDetail });
    return ok;
  }
  get passed(): boolean {
    return this.checks.every((c) => c.ok);
  }
  firstFailure(): string | undefined {
    const failed = this.checks.find((c) => !c.ok);
    return failed ? `${failed.name}: ${failed.detail}` : undefined;
  }
}

/**
 * The package layer, its bytes, the layers derived from it, and the whole manifest against the
 * canonical one. Returns the package as read, when its bytes are the claimed ones.
 */
export async function checkContent(
  request: RequestedArtifact,
  staged: FetchedManifest,
  info: PackageManifestInfo,
  repository: Repository,
  checks: CheckList,
): Promise<PackageContents | undefined> {
  const file = parseArtifactFileName(request.file);
  const identityOk =
    info.name === file.name &&
    info.version === file.version &&
    info.build === file.build &&
    info.format === file.ext &&
    info.fileName === request.file;
  checks.expect(
    'identity',
    identityOk,
    'annotations and layer title agree with the file name',
    `the manifest describes ${info.fileName} (${info.name} ${info.version} ${info.build}, .${info.format}), not ${request.file}`,
  );
  const claimed = `sha256:${request.sha256}`;
  if (
    !checks.expect(
      'claimed-sha256',
      info.packageLayer.digest === claimed,
      `package layer digest is the claimed ${claimed}`,
      `package layer digest is ${info.packageLayer.digest}, the feedstock claimed ${claimed}`,
    )
  ) {
    return undefined;
  }
  const pkg = await readPackageBlob(request, info, repository, checks);
  if (!pkg) return undefined;
  const index = pkg.index;
  const indexOk =
    index.name === file.name &&
    index.version === file.version &&
    index.build === file.build &&
    index.subdir === request.subdir;
  checks.expect(
    'package-index',
    indexOk,
    `info/index.json names ${index.name} ${index.version} ${index.build} in ${index.subdir}`,
    `info/index.json names ${index.name} ${index.version} ${index.build} in ${String(index.subdir)}, the request ${file.name} ${file.version} ${file.build} in ${request.subdir}`,
  );
  const indexDigest = digestOf(pkg.indexJson);
  checks.expect(
    'index-layer',
    info.indexLayer.digest === indexDigest,
    "index.json layer equals the package's info/index.json",
    `index.json layer ${info.indexLayer.digest} differs from the package's (${indexDigest})`,
  );
  checks.expect(
    'md5',
    info.md5 === pkg.md5,
    `md5 annotation is ${pkg.md5}`,
    `md5 annotation is ${info.md5 ?? 'missing'}, the package's md5 is ${pkg.md5}`,
  );
  // Byte for byte: the info layer read by repodata is the one rebuilt from the package, so no
  // second reading of a tarball can see other files in it.
  const infoDigest = digestOf(pkg.infoTarGz);
  checks.expect(
    'info-layer',
    info.infoLayer.digest === infoDigest && info.infoLayer.size === pkg.infoTarGz.length,
    "info layer is the package's info/ folder, packed canonically",
    `info layer ${info.infoLayer.digest} is not the canonical packing of the package's info/ folder (${infoDigest})`,
  );
  checkCanonicalManifest(staged, info, pkg, checks);
  return pkg;
}

/**
 * The staged manifest is, byte for byte, the one upload builds from this package with the same
 * provenance annotations: config, artifactType, every annotation and descriptor field, no
 * `subject`, no `urls`. Whatever promote copies is therefore what was checked.
 */
function checkCanonicalManifest(
  staged: FetchedManifest,
  info: PackageManifestInfo,
  pkg: PackageContents,
  checks: CheckList,
): void {
  const annotations = info.manifest.annotations ?? {};
  const rebuilt = buildPackageArtifact(
    pkg,
    { size: pkg.size, open: () => unreachable() },
    {
      source: annotations[ANNOTATION_SOURCE],
      revision: annotations[ANNOTATION_REVISION],
    },
  );
  const same = Buffer.from(rebuilt.manifest.bytes).equals(Buffer.from(staged.bytes));
  checks.expect(
    'manifest-bytes',
    same,
    `the manifest is the canonical artifact of the package (${rebuilt.descriptor.digest})`,
    `the manifest is not the canonical artifact of the package (${rebuilt.descriptor.digest}): ${firstDifference(
      JSON.parse(new TextDecoder().decode(rebuilt.manifest.bytes)) as unknown,
      JSON.parse(new TextDecoder().decode(staged.bytes)) as unknown,
      '',
    )}`,
  );
}

function unreachable(): never {
  throw new Error('the rebuilt artifact is compared, never pushed');
}

/** Where two JSON values first differ, for people: `layers[1].annotations has "x"`. */
function firstDifference(expected: unknown, found: unknown, path: string): string {
  const at = path || 'the manifest';
  if (typeof expected !== typeof found || Array.isArray(expected) !== Array.isArray(found))
    return `${at} is ${shown(found)}, expected ${shown(expected)}`;
  if (Array.isArray(expected) && Array.isArray(found)) {
    if (expected.length !== found.length)
      return `${at} has ${found.length} entries, expected ${expected.length}`;
    for (let i = 0; i < expected.length; i++) {
      const d = firstDifference(expected[i], found[i], `${path}[${i}]`);
      if (d) return d;
    }
    return '';
  }
  if (expected !== null && typeof expected === 'object' && found !== null && typeof found === 'object') {
    const e = expected as Record<string, unknown>;
    const f = found as Record<string, unknown>;
    for (const key of Object.keys(f))
      if (!(key in e)) return `${at} has ${JSON.stringify(key)}, which the canonical artifact has not`;
    for (const key of Object.keys(e)) {
      if (!(key in f)) return `${at} lacks ${JSON.stringify(key)}`;
      const d = firstDifference(e[key], f[key], path ? `${path}.${key}` : key);
      if (d) return d;
    }
    return '';
  }
  if (expected !== found) return `${at} is ${shown(found)}, expected ${shown(expected)}`;
  // Same values, different bytes: key order or spacing.
  return path ? '' : 'its bytes are not in canonical form (key order or spacing)';
}

function shown(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 120 ? `${text.slice(0, 120)}…` : text;
}

/** Downloads the package layer and reads it; the download is verified against the claimed digest. */
async function readPackageBlob(
  request: RequestedArtifact,
  info: PackageManifestInfo,
  repository: Repository,
  checks: CheckList,
): Promise<PackageContents | undefined> {
  const claimed = `sha256:${request.sha256}`;
  let pkg: PackageContents;
  let blob: AsyncIterator<Uint8Array> | undefined;
  try {
    blob = (await repository.openBlob(info.packageLayer))[Symbol.asyncIterator]();
    // The reader stops at the first problem, before the digest of the whole blob is known; it
    // must not close the download, so that the rest can be checked (see below).
    const shielded: AsyncIterable<Uint8Array> = {
      [Symbol.asyncIterator]: () => ({ next: () => blob!.next() }),
    };
    // openBlob verifies size and digest (the claimed one, checked above) as the bytes arrive and
    // fails at the end unless they match: the reader need not hash them again.
    pkg = await readPackage(shielded, request.file, DEFAULT_LIMITS, {
      verifiedSha256: digestHex(info.packageLayer.digest),
    });
  } catch (err) {
    // Bytes altered on the way would otherwise be blamed on the package: read the same download
    // to its end, where the digest is checked.
    const altered =
      err instanceof PackageError && blob ? await digestProblem(blob, info.packageLayer) : undefined;
    checks.fail('package-bytes', altered ?? describeError(err));
    return undefined;
  } finally {
    await blob?.return?.().catch(() => undefined);
  }
  const bytesOk = `sha256:${pkg.sha256}` === claimed && pkg.size === info.packageLayer.size;
  return checks.expect(
    'package-bytes',
    bytesOk,
    `downloaded ${pkg.size} bytes hash to ${claimed}`,
    `downloaded bytes hash to sha256:${pkg.sha256} (${pkg.size} bytes)`,
  )
    ? pkg
    : undefined;
}

/** Why the rest of a verified download does not match its descriptor, or undefined. */
async function digestProblem(
  rest: AsyncIterator<Uint8Array>,
  layer: Descriptor,
): Promise<string | undefined> {
  try {
    while (!(await rest.next()).done);
    return undefined;
  } catch (err) {
    return err instanceof DigestMismatchError || err instanceof SizeLimitError
      ? `the registry served other bytes than ${layer.digest}: ${describeError(err)}`
      : undefined;
  }
}
