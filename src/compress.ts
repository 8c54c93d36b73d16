/**
 * Deterministic compression of metadata layers: the same JSON bytes always give the same zstd and
 * gzip bytes, on every Node version the action or CLI runs on.
 *
 * - zstd: libzstd compiled to WebAssembly (@hpcc-js/wasm-zstd, the WASM inlined in its JS, so it
 *   bundles into one file). Node 20 has no zstd in zlib, and Node 24's `zlib.zstdCompressSync`
 *   links whatever libzstd that Node release bundles; one WASM build gives one output everywhere.
 * - gzip: fflate (pure JS) with a fixed header: mtime 0, no file name.
 */
import { Zstd } from '@hpcc-js/wasm-zstd';
import { gzipSync } from 'fflate';

/** conda-index compresses repodata.json.zst at level 16; a nightly job can afford it. */
export const DEFAULT_ZSTD_LEVEL = 16;
export const DEFAULT_GZIP_LEVEL = 9;

let zstdModule: Promise<Zstd> | undefined;

function zstd(): Promise<Zstd> {
  zstdModule ??= Zstd.load().catch((err: unknown) => {
    zstdModule = undefined;
    throw err;
  });
  return zstdModule;
}

/** One zstd frame with the content size in its header (as `zstd` and python-zstandard write it). */
export async function zstdCompress(data: Uint8Array, level = DEFAULT_ZSTD_LEVEL): Promise<Uint8Array> {
  const z = await zstd();
  const out = z.compress(data, level);
  if (out.length < 4 || out[0] !== 0x28 || out[1] !== 0xb5 || out[2] !== 0x2f || out[3] !== 0xfd) {
    throw new Error(`zstd compression of ${data.length} bytes failed`);
  }
  return out;
}

/** zstd decompression, for checks and tests. */
export async function zstdDecompress(data: Uint8Array): Promise<Uint8Array> {
  return (await zstd()).decompress(data);
}

/** gzip with a fixed header (mtime 0, no name), so the bytes depend on the input only. */
export function gzipCompress(data: Uint8Array, level = DEFAULT_GZIP_LEVEL): Uint8Array {
  return gzipSync(data, { level: level as 9, mtime: 0 });
}
