/** Our compressed repodata layers read back by the reference tools: zstd(1) and gzip(1). */
import { execFileSync } from 'node:child_process';
import { describe, expect, test } from 'vitest';
import { gzipCompress, zstdCompress, zstdDecompress } from '../../src/compress.js';

describe('compression, read by the zstd and gzip tools', () => {
  test('zstd and gzip are deterministic and round-trip through the zstd and gzip tools', async () => {
    const data = new TextEncoder().encode(
      JSON.stringify({ packages: Array.from({ length: 500 }, (_, i) => `p${i}`) }),
    );
    const z1 = await zstdCompress(data);
    const z2 = await zstdCompress(data);
    expect(Buffer.from(z1).equals(Buffer.from(z2))).toBe(true);
    expect(execFileSync('zstd', ['-dc'], { input: z1 }).equals(Buffer.from(data))).toBe(true);
    expect(Buffer.from(await zstdDecompress(z1)).equals(Buffer.from(data))).toBe(true);
    const g = gzipCompress(data);
    expect(Buffer.from(g).equals(Buffer.from(gzipCompress(data)))).toBe(true);
    expect(Buffer.from(g.subarray(4, 8))).toEqual(Buffer.alloc(4)); // mtime 0
    expect(g[3]! & 0x08).toBe(0); // no file name
    expect(execFileSync('gzip', ['-dc'], { input: g }).equals(Buffer.from(data))).toBe(true);
    // an empty document too
    expect(execFileSync('zstd', ['-dc'], { input: await zstdCompress(new Uint8Array(0)) }).length).toBe(0);
  });
});
