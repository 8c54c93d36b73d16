/**
 * Builders of conda package archives for tests, broken or malicious on purpose: tar members
 * with any name, type or link target (python's tarfile), zips with any members (python's
 * zipfile), zstd and bzip2 by their command-line tools, decompression bombs built cheaply, and
 * byte patches that make a zip's central directory lie.
 */
import { execFileSync, execSync } from 'node:child_process';

export interface TarMember {
  name: string;
  /** Raw name bytes (hex), for names that are not UTF-8. */
  nameHex?: string;
  type?: 'file' | 'dir' | 'symlink' | 'hardlink' | 'fifo' | 'chardev';
  text?: string;
  hex?: string;
  /** A file of this many zero bytes. */
  zeros?: number;
  linkname?: string;
  mode?: number;
}

let python: string | undefined;

/** python3 itself rather than a pyenv shim (which costs 100+ ms per call), without site packages. */
function runPython(script: string, input: string): Buffer {
  python ??= execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], {
    encoding: 'utf8',
  }).trim();
  return execFileSync(python, ['-S', '-c', script], { input, maxBuffer: 1 << 30 });
}

const TAR_SCRIPT = `
import io, json, sys, tarfile
spec = json.load(sys.stdin)
fmt = {'pax': tarfile.PAX_FORMAT, 'gnu': tarfile.GNU_FORMAT, 'ustar': tarfile.USTAR_FORMAT}[spec['format']]
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode='w', format=fmt, encoding='utf-8', errors='surrogateescape') as t:
    for m in spec['members']:
        name = bytes.fromhex(m['nameHex']).decode('utf-8', 'surrogateescape') if 'nameHex' in m else m['name']
        info = tarfile.TarInfo(name)
        kind = m.get('type', 'file')
        info.mode = m.get('mode', 0o755 if kind == 'dir' else 0o644)
        info.mtime = 1700000000
        info.uname = 'builder'
        info.gname = 'builder'
        info.uid = 1000
        info.gid = 1000
        data = b''
        if kind == 'file':
            if 'hex' in m:
                data = bytes.fromhex(m['hex'])
            elif 'zeros' in m:
                data = bytes(m['zeros'])
            else:
                data = m.get('text', '').encode()
            info.size = len(data)
        elif kind == 'dir':
            info.type = tarfile.DIRTYPE
        elif kind == 'symlink':
            info.type = tarfile.SYMTYPE
            info.linkname = m['linkname']
        elif kind == 'hardlink':
            info.type = tarfile.LNKTYPE
            info.linkname = m['linkname']
        elif kind == 'fifo':
            info.type = tarfile.FIFOTYPE
        elif kind == 'chardev':
            info.type = tarfile.CHRTYPE
            info.devmajor = 1
            info.devminor = 3
        t.addfile(info, io.BytesIO(data) if kind == 'file' else None)
sys.stdout.buffer.write(buf.getvalue())
`;

/** A tar archive (python's tarfile, pax format unless told). */
export function tar(members: TarMember[], format: 'pax' | 'gnu' | 'ustar' = 'pax'): Buffer {
  return runPython(TAR_SCRIPT, JSON.stringify({ format, members }));
}

export interface ZipMemberSpec {
  name: string;
  data: Uint8Array;
  /** Compress with DEFLATE instead of storing. */
  deflate?: boolean;
}

const ZIP_SCRIPT = `
import io, json, sys, warnings, zipfile
warnings.simplefilter('ignore')
spec = json.load(sys.stdin)
if spec.get('zip64'):
    # Every size, offset and count takes the zip64 route.
    zipfile.ZIP64_LIMIT = 1
    zipfile.ZIP_FILECOUNT_LIMIT = 1
buf = io.BytesIO()
with zipfile.ZipFile(buf, 'w', compression=zipfile.ZIP_STORED) as z:
    for m in spec['members']:
        info = zipfile.ZipInfo(m['name'], date_time=(2024, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED if m.get('deflate') else zipfile.ZIP_STORED
        with z.open(info, 'w', force_zip64=bool(spec.get('zip64'))) as out:
            out.write(bytes.fromhex(m['hex']))
sys.stdout.buffer.write(buf.getvalue())
`;

/** A zip archive (python's zipfile), members stored unless told. */
export function zip(members: ZipMemberSpec[], options: { zip64?: boolean } = {}): Buffer {
  const spec = {
    zip64: options.zip64 ?? false,
    members: members.map((m) => ({
      name: m.name,
      deflate: m.deflate ?? false,
      hex: Buffer.from(m.data).toString('hex'),
    })),
  };
  return runPython(ZIP_SCRIPT, JSON.stringify(spec));
}

export function zstd(data: Uint8Array, level = 19): Buffer {
  return execFileSync('zstd', ['-q', '-c', `-${level}`], { input: data, maxBuffer: 1 << 30 });
}

export function bzip2(data: Uint8Array): Buffer {
  return execFileSync('bzip2', ['-c', '-9'], { input: data, maxBuffer: 1 << 30 });
}

export interface IndexFields {
  name: string;
  version: string;
  build: string;
  [key: string]: unknown;
}

/** The usual info/ members of a package. */
export function infoMembers(index: IndexFields | string, extra: TarMember[] = []): TarMember[] {
  const text =
    typeof index === 'string'
      ? index
      : JSON.stringify({ build_number: 0, depends: [], subdir: 'linux-64', ...index }, null, 2);
  return [
    { name: 'info/index.json', text },
    { name: 'info/files', text: 'lib/libx.so\n' },
    { name: 'info/about.json', text: '{"summary": "test"}' },
    ...extra,
  ];
}

export interface CondaSpec {
  /** `<name>-<version>-<build>`: names the inner members. */
  stem: string;
  info: TarMember[] | Uint8Array;
  pkg?: TarMember[] | Uint8Array;
  metadata?: string;
  /** Replaces the member list entirely. */
  members?: ZipMemberSpec[];
  /** Added after the usual members. */
  extra?: ZipMemberSpec[];
  zip64?: boolean;
}

let defaultPayload: Buffer | undefined;

export function condaMembers(spec: CondaSpec): ZipMemberSpec[] {
  const infoZst = spec.info instanceof Uint8Array ? spec.info : zstd(tar(spec.info));
  const pkgZst =
    spec.pkg === undefined
      ? (defaultPayload ??= zstd(tar([{ name: 'lib/libx.so', text: 'binary' }])))
      : spec.pkg instanceof Uint8Array
        ? spec.pkg
        : zstd(tar(spec.pkg));
  return [
    { name: 'metadata.json', data: Buffer.from(spec.metadata ?? '{"conda_pkg_format_version": 2}') },
    { name: `pkg-${spec.stem}.tar.zst`, data: pkgZst },
    { name: `info-${spec.stem}.tar.zst`, data: infoZst },
  ];
}

/** A .conda: metadata.json, pkg-<stem>.tar.zst, info-<stem>.tar.zst, as conda-package-handling orders them. */
export function conda(spec: CondaSpec): Buffer {
  const members = spec.members ?? [...condaMembers(spec), ...(spec.extra ?? [])];
  return zip(members, { zip64: spec.zip64 ?? false });
}

/** A .tar.bz2 of these members. */
export function tarBz2(members: TarMember[], format: 'pax' | 'gnu' | 'ustar' = 'pax'): Buffer {
  return bzip2(tar(members, format));
}

/**
 * A zstd frame that starts with `prefix` (a raw block) and continues with `zeroBytes` of zeros in
 * RLE blocks of 128 KiB, 4 bytes each: 2 GiB of zeros take 64 KiB. The header declares a window of
 * 2^windowLog bytes (conda-package-handling writes 2^26) and no content size.
 */
export function zstdZeroBomb(prefix: Uint8Array, zeroBytes: number, windowLog = 26): Buffer {
  const block = 128 * 1024;
  const blocks = Math.ceil(zeroBytes / block);
  const out = Buffer.alloc(6 + 3 + prefix.length + blocks * 4);
  out.writeUInt32LE(0xfd2fb528, 0);
  out[4] = 0x00;
  out[5] = (windowLog - 10) << 3;
  let at = 6;
  const blockHeader = (last: boolean, type: number, size: number): void => {
    out.writeUIntLE((size << 3) | (type << 1) | (last ? 1 : 0), at, 3);
    at += 3;
  };
  blockHeader(blocks === 0, 0, prefix.length);
  out.set(prefix, at);
  at += prefix.length;
  for (let i = 0; i < blocks; i++) {
    const size = Math.min(block, zeroBytes - i * block);
    blockHeader(i === blocks - 1, 1, size);
    out[at++] = 0;
  }
  return out;
}

/** `head -c <bytes> /dev/zero | zstd`: a real encoder's bomb. */
export function zstdOfZeros(bytes: number): Buffer {
  return execSync(`head -c ${bytes} /dev/zero | zstd -q -c`, { maxBuffer: 1 << 26 });
}

/**
 * A bzip2 file that starts with the compressed `prefix` and continues with `zeroBytes` of zeros,
 * as concatenated bzip2 streams (what pbzip2 writes): one stream of 64 MiB of zeros (~100 bytes)
 * repeated, so a multi-GiB bomb costs one small compression.
 */
export function bzip2ZeroBomb(prefix: Uint8Array, zeroBytes: number): Buffer {
  const chunk = 64 * 1024 * 1024;
  const zeros = execSync(`head -c ${chunk} /dev/zero | bzip2 -9 -c`);
  const parts: Buffer[] = [bzip2(prefix)];
  for (let left = zeroBytes; left > 0; left -= chunk) {
    parts.push(left >= chunk ? zeros : execSync(`head -c ${left} /dev/zero | bzip2 -9 -c`));
  }
  return Buffer.concat(parts);
}

/** A ustar header block for a member, without its data: the start of a tar, for bombs. */
export function tarHeader(name: string, size: number): Buffer {
  const full = tar([{ name, zeros: 0 }], 'ustar');
  const header = Buffer.from(full.subarray(0, 512));
  header.write(size.toString(8).padStart(11, '0') + '\0', 124, 'latin1');
  header.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return header;
}

const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
const END = 0x06054b50;

/** Offsets of the central directory header and the local header of a member. */
export function zipOffsets(bytes: Buffer, member: string): { central: number; local: number } {
  for (let at = bytes.length - 22; at >= 0; at--) {
    if (bytes.readUInt32LE(at) !== CENTRAL) continue;
    const nameLength = bytes.readUInt16LE(at + 28);
    if (bytes.toString('utf8', at + 46, at + 46 + nameLength) === member) {
      const local = bytes.readUInt32LE(at + 42);
      if (bytes.readUInt32LE(local) !== LOCAL) throw new Error('no local header where the directory says');
      return { central: at, local };
    }
  }
  throw new Error(`no central directory entry for ${member}`);
}

export type ZipField = 'flags' | 'method' | 'crc32' | 'compressedSize' | 'size' | 'offset';

const CENTRAL_FIELDS: Record<ZipField, [offset: number, bytes: number]> = {
  flags: [8, 2],
  method: [10, 2],
  crc32: [16, 4],
  compressedSize: [20, 4],
  size: [24, 4],
  offset: [42, 4],
};
const LOCAL_FIELDS: Record<Exclude<ZipField, 'offset'>, [offset: number, bytes: number]> = {
  flags: [6, 2],
  method: [8, 2],
  crc32: [14, 4],
  compressedSize: [18, 4],
  size: [22, 4],
};

/** A copy with one field of a member's central directory entry changed. */
export function patchCentral(bytes: Buffer, member: string, field: ZipField, value: number): Buffer {
  const out = Buffer.from(bytes);
  const [offset, size] = CENTRAL_FIELDS[field];
  out.writeUIntLE(value, zipOffsets(out, member).central + offset, size);
  return out;
}

/** A copy with one field of a member's local header changed. */
export function patchLocal(
  bytes: Buffer,
  member: string,
  field: Exclude<ZipField, 'offset'>,
  value: number,
): Buffer {
  const out = Buffer.from(bytes);
  const [offset, size] = LOCAL_FIELDS[field];
  out.writeUIntLE(value, zipOffsets(out, member).local + offset, size);
  return out;
}

export function readCentral(bytes: Buffer, member: string, field: ZipField): number {
  const [offset, size] = CENTRAL_FIELDS[field];
  return bytes.readUIntLE(zipOffsets(bytes, member).central + offset, size);
}

export type EndField = 'entries' | 'size' | 'offset';

/** A copy with one field of the end of central directory record changed. */
export function patchEnd(bytes: Buffer, field: EndField, value: number): Buffer {
  const out = Buffer.from(bytes);
  const at = out.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  if (at < 0 || out.readUInt32LE(at) !== END) throw new Error('no end record');
  if (field === 'entries') {
    out.writeUInt16LE(value, at + 8);
    out.writeUInt16LE(value, at + 10);
  } else {
    out.writeUInt32LE(value, at + (field === 'size' ? 12 : 16));
  }
  return out;
}

/** A copy with every occurrence of `from` replaced by `to` (same length). */
export function replaceBytes(bytes: Buffer, from: Uint8Array, to: Uint8Array): Buffer {
  if (from.length !== to.length) throw new Error('replaceBytes needs equal lengths');
  const out = Buffer.from(bytes);
  let count = 0;
  for (let at = out.indexOf(from); at !== -1; at = out.indexOf(from, at + 1)) {
    out.set(to, at);
    count++;
  }
  if (count === 0) throw new Error('nothing to replace');
  return out;
}

/** The bytes as a stream of chunks whose sizes cycle through `sizes`. */
export async function* chunked(bytes: Uint8Array, sizes: readonly number[]): AsyncGenerator<Uint8Array> {
  let turn = 0;
  for (let at = 0; at < bytes.length;) {
    const size = sizes[turn++ % sizes.length] as number;
    yield bytes.slice(at, at + size);
    at += size;
  }
}
