/**
 * Compares two info tarballs by content, file by file. The same package always gives the same
 * info layer bytes here, but another tool (or an older version of this one) may have packed the
 * same files differently; what matters is the files.
 */
import { Gunzip } from 'fflate';
import { extract } from 'tar-stream';
import { Readable } from 'node:stream';
import { createHash } from 'node:crypto';

/** Uncompressed bytes allowed per tarball (a decompression bomb stops here). */
const LIMIT = 512 * 1024 * 1024;

interface Entry {
  type: string;
  content: string;
}

function gunzipBounded(bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let total = 0;
  const gunzip = new Gunzip((chunk) => {
    total += chunk.length;
    if (total > LIMIT) throw new Error(`an info tarball inflates to more than ${LIMIT} bytes`);
    out.push(chunk);
  });
  gunzip.push(bytes, true);
  return out;
}

async function entries(bytes: Uint8Array): Promise<Map<string, Entry>> {
  const result = new Map<string, Entry>();
  const tar = extract();
  const done = new Promise<void>((resolve, reject) => {
    tar.on('entry', (header, stream, next) => {
      const hash = createHash('sha256');
      stream.on('data', (chunk) => hash.update(chunk as Buffer));
      stream.on('end', () => {
        if (header.type !== 'directory') {
          const content = header.type === 'file' ? hash.digest('hex') : (header.linkname ?? '');
          result.set(header.name.replace(/^\.\//, ''), { type: header.type ?? 'file', content });
        }
        next();
      });
      stream.on('error', reject);
    });
    tar.on('finish', resolve);
    tar.on('error', reject);
  });
  Readable.from(gunzipBounded(bytes).map((c) => Buffer.from(c))).pipe(tar);
  await done;
  return result;
}

/** True when both hold the same files; otherwise the first difference, in words. */
export async function sameInfoTarball(a: Uint8Array, b: Uint8Array): Promise<true | string> {
  const [left, right] = await Promise.all([entries(a), entries(b)]);
  for (const [name, entry] of right) {
    const other = left.get(name);
    if (!other) return `info layer lacks ${name}`;
    if (other.type !== entry.type || other.content !== entry.content)
      return `info layer's ${name} differs from the package's`;
  }
  for (const name of left.keys())
    if (!right.has(name)) return `info layer has ${name}, which the package's info/ does not`;
  return true;
}
