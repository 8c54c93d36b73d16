/**
 * Tar archives crafted block by block, in Node alone, for the tar policy's tests: every header
 * field can be set (or left wrong) on purpose, where python's tarfile (archives.ts) would refuse
 * to write it. Also the smallest .conda around an info archive (a stored zip, as
 * conda-package-handling writes it) and the info layer's gzip, so one crafted tar can be read
 * in every place that reads tar.
 *
 * Header layout: POSIX.1-2017 `pax`, ustar interchange format; GNU tar manual for `L` records.
 */
import { crc32, gzipSync, zstdCompressSync } from 'node:zlib';

export const BLOCK = 512;
export const ZERO_BLOCK = new Uint8Array(BLOCK);
/** The end-of-archive marker: two zero blocks. */
export const END = new Uint8Array(2 * BLOCK);

export interface HeaderFields {
  name: string | Uint8Array;
  /** Typeflag character: '0' file, '2' symlink, '5' directory, 'x' pax, 'L' GNU long name, ... */
  type?: string;
  size?: number;
  mode?: number;
  linkname?: string;
  /** 'ustar' (POSIX, the default), 'gnu', or 'v7' (no magic). */
  format?: 'ustar' | 'gnu' | 'v7';
  /** The ustar prefix field (bytes 345..500), whatever the format. */
  prefix?: string;
  /** Raw bytes written over the header at an offset, before the checksum (to break a field). */
  patch?: [offset: number, bytes: string][];
}

const encoder = new TextEncoder();

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, '0')}\0`;
}

/** One 512-byte header block with a correct (unsigned) checksum. */
export function header(fields: HeaderFields): Uint8Array {
  const h = Buffer.alloc(BLOCK);
  const name = typeof fields.name === 'string' ? encoder.encode(fields.name) : fields.name;
  h.set(name.subarray(0, 100), 0);
  h.write(octal(fields.mode ?? 0o644, 8), 100, 'latin1');
  h.write(octal(0, 8), 108, 'latin1');
  h.write(octal(0, 8), 116, 'latin1');
  h.write(octal(fields.size ?? 0, 12), 124, 'latin1');
  h.write(octal(0, 12), 136, 'latin1');
  h.write(fields.type ?? '0', 156, 'latin1');
  if (fields.linkname) h.write(fields.linkname, 157, 'utf8');
  const format = fields.format ?? 'ustar';
  if (format === 'ustar') h.write('ustar\u000000', 257, 'latin1');
  if (format === 'gnu') h.write('ustar  \0', 257, 'latin1');
  if (format !== 'v7') {
    h.write(octal(0, 8), 329, 'latin1');
    h.write(octal(0, 8), 337, 'latin1');
  }
  if (fields.prefix) h.write(fields.prefix, 345, 'utf8');
  for (const [offset, bytes] of fields.patch ?? []) h.write(bytes, offset, 'latin1');
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return h;
}

/** Data padded to whole blocks. */
export function padded(data: Uint8Array | string): Uint8Array {
  const bytes = typeof data === 'string' ? encoder.encode(data) : data;
  const out = new Uint8Array(Math.ceil(bytes.length / BLOCK) * BLOCK);
  out.set(bytes);
  return out;
}

/** A regular file: header and data. */
export function file(name: string, text: string, fields: Partial<HeaderFields> = {}): Uint8Array[] {
  const data = encoder.encode(text);
  return [header({ name, size: data.length, ...fields }), padded(data)];
}

/** `<length> <key>=<value>\n`, the length counting the whole record. */
export function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let length = Buffer.byteLength(body) + 1;
  while (String(length).length + Buffer.byteLength(body) !== length) length++;
  return `${length}${body}`;
}

/** A pax extended header ('x', or 'g' for a global one) holding `records`. */
export function pax(records: [string, string][] | string, type = 'x'): Uint8Array[] {
  const text = typeof records === 'string' ? records : records.map(([k, v]) => paxRecord(k, v)).join('');
  const body = encoder.encode(text);
  return [header({ name: 'PaxHeader/x', type, size: body.length }), padded(body)];
}

/** A GNU long name ('L') or long link ('K') record. */
export function gnuLong(value: string, type: 'L' | 'K' = 'L'): Uint8Array[] {
  const body = encoder.encode(`${value}\0`);
  return [header({ name: '././@LongLink', type, size: body.length, format: 'gnu' }), padded(body)];
}

export function concat(parts: (Uint8Array | Uint8Array[])[]): Uint8Array {
  return Buffer.concat(parts.flat());
}

/** index.json for a package named `name-1.0-0`. */
export function indexJson(name: string): string {
  return JSON.stringify({ name, version: '1.0', build: '0', build_number: 0, depends: [], subdir: 'noarch' });
}

/** A .conda holding `infoZst` as its info archive (zstd of a crafted tar, or crafted zstd). */
export function condaAround(stem: string, infoZst: Uint8Array): Uint8Array {
  return storedZip([
    ['metadata.json', encoder.encode('{"conda_pkg_format_version": 2}')],
    [`pkg-${stem}.tar.zst`, zstdCompressSync(concat([file('lib/x', 'x'), END]))],
    [`info-${stem}.tar.zst`, infoZst],
  ]);
}

/** The info layer around a crafted tar: gzip, as buildInfoTarGz compresses. */
export function layerAround(tar: Uint8Array): Uint8Array {
  return gzipSync(tar, { level: 9 });
}

export function zstd(bytes: Uint8Array): Uint8Array {
  return zstdCompressSync(bytes);
}

/** A zip of stored members (APPNOTE 4.3.7, 4.3.12, 4.3.16), no zip64. */
export function storedZip(members: [string, Uint8Array][]): Uint8Array {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const [name, data] of members) {
    const nameBytes = Buffer.from(name, 'utf8');
    const crc = crc32(data) >>> 0;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(nameBytes.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(nameBytes.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, nameBytes, Buffer.from(data));
    centrals.push(central, nameBytes);
    offset += 30 + nameBytes.length + data.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(members.length, 8);
  end.writeUInt16LE(members.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}
