/**
 * Small, distinct, valid conda packages made on the fly, for suites that need many of them
 * (fault injection, crash and rerun): a ustar writer, the project's own deterministic zstd
 * (libzstd in WASM) and fflate's zip for `.conda`, the `bzip2` tool for `.tar.bz2`. The same spec
 * always gives the same bytes. conda-package-handling reads them (checked in faults.test.ts).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { zipSync } from 'fflate';
import { zstdCompress } from '../../src/compress.js';

export interface PackageSpec {
  name: string;
  version: string;
  build: string;
  subdir?: string;
  ext?: 'conda' | 'tar.bz2';
  /** Bytes of incompressible payload (a deterministic pseudo-random file). Default 1 KiB. */
  payloadBytes?: number;
  depends?: string[];
  runExports?: Record<string, unknown>;
}

export interface MadePackage {
  path: string;
  file: string;
  subdir: string;
  name: string;
  version: string;
  build: string;
  sha256: string;
  md5: string;
  size: number;
  /** `<subdir>/<file>=<sha256>`, as `--artifact` takes it. */
  artifact: string;
}

interface TarFile {
  name: string;
  data: Uint8Array;
  mode?: number;
}

const MTIME = 1_700_000_000;

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

/** A ustar archive of regular files (names under 100 bytes), two zero blocks at the end. */
export function ustar(files: TarFile[]): Uint8Array {
  const blocks: Uint8Array[] = [];
  for (const file of files) {
    const header = Buffer.alloc(512);
    if (Buffer.byteLength(file.name) > 99) throw new Error(`tar name too long: ${file.name}`);
    header.write(file.name, 0, 'utf8');
    header.write(octal(file.mode ?? 0o644, 8), 100, 'latin1');
    header.write(octal(0, 8), 108, 'latin1');
    header.write(octal(0, 8), 116, 'latin1');
    header.write(octal(file.data.length, 12), 124, 'latin1');
    header.write(octal(MTIME, 12), 136, 'latin1');
    header.fill(0x20, 148, 156);
    header.write('0', 156, 'latin1');
    header.write('ustar\0', 257, 'latin1');
    header.write('00', 263, 'latin1');
    let sum = 0;
    for (const byte of header) sum += byte;
    header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
    blocks.push(header, file.data);
    const pad = (512 - (file.data.length % 512)) % 512;
    if (pad) blocks.push(Buffer.alloc(pad));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

/** Deterministic incompressible bytes (sha256 in counter mode). */
export function pseudoRandom(seed: string, length: number): Uint8Array {
  const out = Buffer.alloc(length);
  for (let at = 0, i = 0; at < length; i++) {
    const block = createHash('sha256').update(`${seed}:${i}`).digest();
    block.copy(out, at, 0, Math.min(32, length - at));
    at += 32;
  }
  return out;
}

const text = (s: string): Uint8Array => Buffer.from(s, 'utf8');

function infoFiles(spec: Required<Pick<PackageSpec, 'name' | 'version' | 'build' | 'subdir'>> & PackageSpec) {
  const index = {
    arch: spec.subdir === 'noarch' ? null : 'x86_64',
    build: spec.build,
    build_number: Number(/(\d+)$/.exec(spec.build)?.[1] ?? 0),
    depends: spec.depends ?? [],
    license: 'BSD-3-Clause',
    name: spec.name,
    platform: spec.subdir === 'noarch' ? null : 'linux',
    subdir: spec.subdir,
    timestamp: MTIME * 1000,
    version: spec.version,
  };
  const payloadPath = `lib/${spec.name}.bin`;
  const files: TarFile[] = [
    { name: 'info/about.json', data: text(JSON.stringify({ summary: `${spec.name} for tests` })) },
    { name: 'info/files', data: text(`${payloadPath}\n`) },
    { name: 'info/index.json', data: text(JSON.stringify(index, null, 2)) },
    {
      name: 'info/paths.json',
      data: text(
        JSON.stringify({ paths: [{ _path: payloadPath, path_type: 'hardlink' }], paths_version: 1 }),
      ),
    },
  ];
  if (spec.runExports)
    files.push({ name: 'info/run_exports.json', data: text(JSON.stringify(spec.runExports)) });
  return { files, payloadPath };
}

/** Writes the package into `dir/<subdir>/` and describes it. */
export async function makePackage(dir: string, input: PackageSpec): Promise<MadePackage> {
  const spec = { subdir: 'linux-64', ext: 'conda' as const, payloadBytes: 1024, ...input };
  const stem = `${spec.name}-${spec.version}-${spec.build}`;
  const file = `${stem}.${spec.ext}`;
  const { files: info, payloadPath } = infoFiles(spec);
  const payload: TarFile = { name: payloadPath, data: pseudoRandom(stem, spec.payloadBytes) };
  let bytes: Uint8Array;
  if (spec.ext === 'conda') {
    const opts = { level: 0 as const, mtime: new Date(MTIME * 1000) };
    bytes = zipSync(
      {
        'metadata.json': [text('{"conda_pkg_format_version": 2}'), opts],
        [`pkg-${stem}.tar.zst`]: [await zstdCompress(ustar([payload]), 3), opts],
        [`info-${stem}.tar.zst`]: [await zstdCompress(ustar(info), 3), opts],
      },
      { level: 0 },
    );
  } else {
    bytes = execFileSync('bzip2', ['-c', '-1'], { input: ustar([...info, payload]) });
  }
  const target = join(dir, spec.subdir);
  mkdirSync(target, { recursive: true });
  const path = join(target, file);
  writeFileSync(path, bytes);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  return {
    path,
    file,
    subdir: spec.subdir,
    name: spec.name,
    version: spec.version,
    build: spec.build,
    sha256,
    md5: createHash('md5').update(bytes).digest('hex'),
    size: bytes.length,
    artifact: `${spec.subdir}/${file}=${sha256}`,
  };
}

/**
 * `count` distinct packages: names `<prefix>-<i>`, versions and builds varied, every fifth a
 * `.tar.bz2`, every seventh noarch, payloads from `minPayload` to `maxPayload` bytes.
 */
export async function makePackages(
  dir: string,
  count: number,
  options: { prefix?: string; minPayload?: number; maxPayload?: number } = {},
): Promise<MadePackage[]> {
  const prefix = options.prefix ?? 'pkg';
  const min = options.minPayload ?? 256;
  const max = options.maxPayload ?? 8192;
  const made: MadePackage[] = [];
  for (let i = 0; i < count; i++) {
    made.push(
      await makePackage(dir, {
        name: `${prefix}-${i % 40}`,
        version: `${1 + Math.floor(i / 40)}.${i % 7}.${i}`,
        build: `h${(i * 2654435761).toString(16).slice(-7).padStart(7, '0')}_${i % 3}`,
        subdir: i % 7 === 3 ? 'noarch' : 'linux-64',
        ext: i % 5 === 4 ? 'tar.bz2' : 'conda',
        payloadBytes: min + ((i * 7919) % Math.max(1, max - min)),
        depends: i % 2 ? [`${prefix}-${(i + 1) % 40} >=1`] : [],
        ...(i % 3 === 0 ? { runExports: { weak: [`${prefix}-${i % 40} >=1`] } } : {}),
      }),
    );
  }
  return made;
}
