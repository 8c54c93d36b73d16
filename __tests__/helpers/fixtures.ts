/** The fixture packages (real ones, made with `cph create`) and what they are known to contain. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

export const FIXTURES = join(import.meta.dirname, '..', '..', '__fixtures__', 'packages');

export interface ExpectedPackage {
  subdir: string;
  filename: string;
  name: string;
  version: string;
  build: string;
  sha256: string;
  md5: string;
  size: number;
  index: Record<string, unknown>;
  run_exports: Record<string, unknown> | null;
}

export const EXPECTED: ExpectedPackage[] = JSON.parse(
  readFileSync(join(FIXTURES, 'expected.json'), 'utf8'),
) as ExpectedPackage[];

export function fixturePath(fileName: string): string {
  return join(FIXTURES, fileName);
}

export function expectedOf(fileName: string): ExpectedPackage {
  const found = EXPECTED.find((e) => e.filename === fileName);
  if (!found) throw new Error(`no fixture ${fileName}`);
  return found;
}

/** Files below `dir`, path → bytes, as `cph x --info` extracted them. */
export function cphInfo(packagePath: string): Map<string, Buffer> {
  const dest = mkdtempSync(join(tmpdir(), 'cph-info-'));
  execFileSync('cph', ['x', '--info', packagePath, '--dest', dest], { stdio: 'pipe' });
  const files = new Map<string, Buffer>();
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir)) {
      const path = join(dir, entry);
      if (statSync(path).isDirectory()) walk(path);
      else files.set(relative(dest, path).split('\\').join('/'), readFileSync(path));
    }
  };
  walk(dest);
  // For a .tar.bz2, `cph x --info` extracts the whole archive: keep info/ only.
  return new Map([...files].filter(([path]) => path.startsWith('info/')));
}
