/**
 * Synthetic but valid `.conda` packages for the benchmarks, written quickly and reproducibly.
 *
 * A `.conda` is a STORED zip of `metadata.json`, `pkg-<stem>.tar.zst` and `info-<stem>.tar.zst`
 * (the order conda-package-handling writes). The info archive is a small tar (index.json,
 * about.json, paths.json) compressed by the `zstd` tool. The payload archive is a tar holding one
 * file of pseudo-random bytes (AES-128-CTR keystream of a seed, so the same seed gives the same
 * bytes); random bytes do not compress, so it is framed as zstd "raw" blocks, which any zstd
 * decoder reads and which costs no compression time. `cph extract` unpacks the result.
 */
import { spawnSync } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { crc32 } from 'node:zlib';

const encoder = new TextEncoder();

/** A ustar archive of regular files, entries with zero mtime/uid/gid. */
function tar(entries) {
  const parts = [];
  for (const { path, data } of entries) {
    parts.push(tarHeader(path, data.length), data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

function tarHeader(path, size) {
  const h = Buffer.alloc(512);
  h.write(path, 0, 100, 'utf8');
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  h.write('00000000000\0', 136);
  h.write('        ', 148);
  h.write('0', 156);
  h.write('ustar\0', 257);
  h.write('00', 263);
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return h;
}

function zstdCompress(bytes) {
  const result = spawnSync('zstd', ['-q', '-c', '-3'], { input: bytes, maxBuffer: 64 * 1024 * 1024 });
  if (result.status !== 0) throw new Error(`zstd failed: ${result.stderr}`);
  return result.stdout;
}

/** Pseudo-random bytes from a seed: the AES-128-CTR keystream, ~GB/s. */
function keystream(seed) {
  const key = createHash('sha256').update(`bench-payload:${seed}`).digest();
  const cipher = createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32));
  const zeros = Buffer.alloc(4 * 1024 * 1024);
  return (length) => cipher.update(length === zeros.length ? zeros : zeros.subarray(0, length));
}

const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
/** Frame header: no checksum, no content size; window 128 KiB (Window_Descriptor 7 << 3). */
const ZSTD_FRAME_HEADER = Buffer.concat([ZSTD_MAGIC, Buffer.from([0x00, 0x38])]);
const RAW_BLOCK = 128 * 1024;

function rawBlockHeader(size, last) {
  const value = (size << 3) | (last ? 1 : 0); // block type 0: raw
  return Buffer.from([value & 0xff, (value >> 8) & 0xff, (value >> 16) & 0xff]);
}

/**
 * Yields the payload `pkg-*.tar.zst`: a zstd frame of raw blocks around a tar that holds
 * `lib/<name>.bin` of `payloadBytes` pseudo-random bytes.
 */
function* payloadArchive(name, payloadBytes, seed) {
  const random = keystream(seed);
  // The tar as a sequence of pieces, re-cut into 128 KiB raw blocks.
  function* tarPieces() {
    yield tarHeader(`lib/${name}.bin`, payloadBytes);
    for (let left = payloadBytes; left > 0;) {
      const n = Math.min(left, 4 * 1024 * 1024);
      yield random(n);
      left -= n;
    }
    yield Buffer.alloc((512 - (payloadBytes % 512)) % 512);
    yield Buffer.alloc(1024);
  }
  const tarSize = 512 + payloadBytes + ((512 - (payloadBytes % 512)) % 512) + 1024;
  yield ZSTD_FRAME_HEADER;
  let emitted = 0;
  let pending = [];
  let pendingSize = 0;
  const flush = function* (size) {
    const block = Buffer.concat(pending, pendingSize);
    let at = 0;
    while (block.length - at >= size && size > 0) {
      emitted += size;
      yield rawBlockHeader(size, emitted === tarSize);
      yield block.subarray(at, at + size);
      at += size;
    }
    pending = at < block.length ? [block.subarray(at)] : [];
    pendingSize = block.length - at;
  };
  for (const piece of tarPieces()) {
    pending.push(piece);
    pendingSize += piece.length;
    if (pendingSize >= RAW_BLOCK) yield* flush(RAW_BLOCK);
  }
  if (pendingSize > 0) yield* flush(pendingSize);
}

/** Writes a STORED zip member header, the data from `pieces`, and returns its central entry. */
function zipMember(fd, position, name, pieces) {
  const nameBytes = encoder.encode(name);
  const header = Buffer.alloc(30 + nameBytes.length);
  const dataStart = position + header.length;
  let size = 0;
  let crc = 0;
  for (const piece of pieces) {
    writeSync(fd, piece, 0, piece.length, dataStart + size);
    crc = crc32(piece, crc);
    size += piece.length;
  }
  header.writeUInt32LE(0x04034b50, 0);
  header.writeUInt16LE(20, 4); // version needed
  header.writeUInt16LE(0, 6); // flags
  header.writeUInt16LE(0, 8); // method: stored
  header.writeUInt16LE(0, 10); // time
  header.writeUInt16LE(0x21, 12); // date: 1980-01-01
  header.writeUInt32LE(crc >>> 0, 14);
  header.writeUInt32LE(size, 18);
  header.writeUInt32LE(size, 22);
  header.writeUInt16LE(nameBytes.length, 26);
  header.writeUInt16LE(0, 28);
  nameBytes.forEach((b, i) => (header[30 + i] = b));
  writeSync(fd, header, 0, header.length, position);
  return { entry: { nameBytes, crc: crc >>> 0, size, offset: position }, end: dataStart + size };
}

function centralDirectory(entries, start) {
  const parts = [];
  for (const e of entries) {
    const h = Buffer.alloc(46 + e.nameBytes.length);
    h.writeUInt32LE(0x02014b50, 0);
    h.writeUInt16LE(20, 4); // made by
    h.writeUInt16LE(20, 6); // needed
    h.writeUInt16LE(0, 8);
    h.writeUInt16LE(0, 10);
    h.writeUInt16LE(0, 12);
    h.writeUInt16LE(0x21, 14);
    h.writeUInt32LE(e.crc, 16);
    h.writeUInt32LE(e.size, 20);
    h.writeUInt32LE(e.size, 24);
    h.writeUInt16LE(e.nameBytes.length, 28);
    h.writeUInt32LE(0o100644 * 0x10000, 38); // external attributes: regular file, 0644
    h.writeUInt32LE(e.offset, 42);
    e.nameBytes.forEach((b, i) => (h[46 + i] = b));
    parts.push(h);
  }
  const directory = Buffer.concat(parts);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(start, 16);
  return Buffer.concat([directory, end]);
}

/**
 * Writes `<dir>/<name>-<version>-<build>.conda` and returns its path. `payloadBytes` up to a few
 * GiB (no zip64).
 */
export function writeConda(
  dir,
  { name, version, build, buildNumber = 0, subdir = 'linux-64', payloadBytes, seed, timestamp },
) {
  const stem = `${name}-${version}-${build}`;
  const index = {
    arch: subdir === 'noarch' ? null : 'x86_64',
    build,
    build_number: buildNumber,
    depends: ['libgcc >=13', 'python >=3.10'],
    license: 'BSD-3-Clause',
    name,
    platform: subdir === 'noarch' ? null : 'linux',
    subdir,
    timestamp: timestamp ?? 1_700_000_000_000,
    version,
  };
  const infoTar = tar([
    { path: 'info/index.json', data: encoder.encode(JSON.stringify(index, null, 2)) },
    {
      path: 'info/about.json',
      data: encoder.encode(JSON.stringify({ summary: `benchmark package ${name}`, license: 'BSD-3-Clause' })),
    },
    {
      path: 'info/paths.json',
      data: encoder.encode(
        JSON.stringify({
          paths: [{ _path: `lib/${name}.bin`, path_type: 'hardlink', size_in_bytes: payloadBytes }],
          paths_version: 1,
        }),
      ),
    },
  ]);
  const path = `${dir}/${stem}.conda`;
  const fd = openSync(path, 'w');
  try {
    const entries = [];
    let at = 0;
    for (const [member, pieces] of [
      ['metadata.json', [encoder.encode('{"conda_pkg_format_version": 2}')]],
      [`pkg-${stem}.tar.zst`, payloadArchive(name, payloadBytes, seed)],
      [`info-${stem}.tar.zst`, [zstdCompress(infoTar)]],
    ]) {
      const written = zipMember(fd, at, member, pieces);
      entries.push(written.entry);
      at = written.end;
    }
    const directory = centralDirectory(entries, at);
    writeSync(fd, directory, 0, directory.length, at);
  } finally {
    closeSync(fd);
  }
  return path;
}
