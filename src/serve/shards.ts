/**
 * CEP 16 sharded repodata (https://github.com/conda/ceps/blob/main/cep-0016.md), built from a
 * subdir's repodata.json:
 *
 * - one shard per package name: a zstd-compressed msgpack map with `packages` (.tar.bz2 records),
 *   `packages.conda` (.conda records) and `removed` (file names), the records as in repodata.json
 *   except `sha256` and `md5` (and `legacy_bz2_md5`), which are binary instead of hex;
 * - the shard index `repodata_shards.msgpack.zst`: a zstd-compressed msgpack map
 *   `{version: 1, info: {subdir, base_url, shards_base_url}, shards: {name: sha256 bytes}}`,
 *   where each sha256 is that of the shard's compressed bytes, which are served at
 *   `<shards_base_url><sha256 hex>.msgpack.zst`.
 *
 * Deterministic: map keys sorted, no creation time, so the same repodata always gives the same
 * bytes (and a client's cached shards stay valid across gateway restarts).
 */
import { createHash } from 'node:crypto';
import { encode } from '@msgpack/msgpack';
import { zstdCompress } from '../compress.js';
import { parseArtifactFileName } from '../conda/naming.js';

export const SHARD_INDEX_FILE = 'repodata_shards.msgpack.zst';
export const SHARDS_DIR = 'shards';
const ZSTD_LEVEL = 9;
/** Record fields that shards carry as bytes. */
const BINARY_HASHES: Record<string, number> = { sha256: 32, md5: 16, legacy_bz2_md5: 16 };

export interface ShardSet {
  subdir: string;
  /** The compressed index. */
  index: Uint8Array;
  /** sha256 hex of `index`. */
  indexSha256: string;
  /** Compressed shards by the sha256 hex of their bytes. */
  shards: Map<string, Uint8Array>;
  /** Package name -> shard sha256 hex. */
  byName: Map<string, string>;
  /** All bytes held, for cache accounting. */
  bytes: number;
}

interface Shard {
  packages: Record<string, Record<string, unknown>>;
  'packages.conda': Record<string, Record<string, unknown>>;
  removed: string[];
}

type RepodataDocument = {
  packages?: Record<string, Record<string, unknown>>;
  'packages.conda'?: Record<string, Record<string, unknown>>;
  removed?: unknown;
};

function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** A record as a shard holds it: hex digests as bytes, everything else unchanged. */
export function shardRecord(record: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(record)) {
    const length = BINARY_HASHES[key];
    if (
      length !== undefined &&
      typeof value === 'string' &&
      new RegExp(`^[0-9a-fA-F]{${length * 2}}$`).test(value)
    )
      out[key] = Uint8Array.from(Buffer.from(value, 'hex'));
    else out[key] = value;
  }
  return out;
}

function nameOf(fileName: string, record: Record<string, unknown> | undefined): string | undefined {
  if (record && typeof record.name === 'string') return record.name;
  try {
    return parseArtifactFileName(fileName).name;
  } catch {
    return undefined;
  }
}

function encodeMsgpack(value: unknown): Uint8Array {
  return encode(value, { sortKeys: true, ignoreUndefined: true });
}

/** Builds the index and every shard of one subdir's repodata.json. */
export async function buildShards(repodataJson: Uint8Array, subdir: string): Promise<ShardSet> {
  const doc = JSON.parse(
    Buffer.from(repodataJson.buffer, repodataJson.byteOffset, repodataJson.length).toString('utf8'),
  ) as RepodataDocument;
  const byName = new Map<string, Shard>();
  const shardOf = (name: string): Shard => {
    let shard = byName.get(name);
    if (!shard) {
      shard = { packages: {}, 'packages.conda': {}, removed: [] };
      byName.set(name, shard);
    }
    return shard;
  };
  for (const key of ['packages', 'packages.conda'] as const) {
    for (const [fileName, record] of Object.entries(doc[key] ?? {})) {
      const name = nameOf(fileName, record);
      if (name !== undefined) shardOf(name)[key][fileName] = shardRecord(record);
    }
  }
  if (Array.isArray(doc.removed)) {
    for (const fileName of doc.removed) {
      if (typeof fileName !== 'string') continue;
      const name = nameOf(fileName, undefined);
      if (name !== undefined) shardOf(name).removed.push(fileName);
    }
  }

  const shards = new Map<string, Uint8Array>();
  const names = new Map<string, string>();
  const indexShards: Record<string, Uint8Array> = {};
  let bytes = 0;
  let count = 0;
  for (const name of [...byName.keys()].sort()) {
    // conda-forge has tens of thousands of names per subdir: let other requests in now and then.
    if (++count % 256 === 0) await new Promise<void>((resolve) => setImmediate(resolve));
    const shard = byName.get(name)!;
    shard.removed.sort();
    const compressed = await zstdCompress(encodeMsgpack(shard), ZSTD_LEVEL);
    const hex = sha256Hex(compressed);
    shards.set(hex, compressed);
    names.set(name, hex);
    indexShards[name] = Uint8Array.from(Buffer.from(hex, 'hex'));
    bytes += compressed.length;
  }
  const index = await zstdCompress(
    encodeMsgpack({
      version: 1,
      info: { subdir, base_url: './', shards_base_url: `./${SHARDS_DIR}/` },
      shards: indexShards,
    }),
    ZSTD_LEVEL,
  );
  return {
    subdir,
    index,
    indexSha256: sha256Hex(index),
    shards,
    byName: names,
    bytes: bytes + index.length,
  };
}
