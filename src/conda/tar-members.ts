/**
 * The member rules of the tar policy (tar-reader.ts), by normalised path: duplicates and shadowed
 * members, links that leave the archive, the member count; and the path arithmetic they need.
 */
import { SizeLimitError } from '../oci/errors.js';
import { quote, TarRuleError, type TarRule } from './archive-error.js';
import type { TarEntry, TarEntryType } from './tar-reader.js';

/**
 * The members seen so far, by normalised path: duplicates, members below something that is not a
 * directory, links that leave the archive, hard links to what is not an earlier file. Implied
 * parent directories are recorded too, so a later file cannot replace one.
 */
export class MemberTable {
  private readonly seen = new Map<string, TarEntryType | 'parent'>();
  private count = 0;

  constructor(
    private readonly maxMembers: number,
    private readonly refuse: (rule: TarRule, detail: string, cause?: unknown) => never,
  ) {}

  check(entry: TarEntry, what: string): void {
    if (++this.count > this.maxMembers) {
      this.refuse(
        'member-count',
        `it has more than ${this.maxMembers} members`,
        new SizeLimitError(`${what} member count`, this.maxMembers),
      );
    }
    const { path, name } = entry;
    if (path === '') return; // the archive root, "./"
    const earlier = this.seen.get(path);
    if (earlier !== undefined) {
      if (entry.type === 'directory' && (earlier === 'directory' || earlier === 'parent')) {
        this.seen.set(path, 'directory');
        return; // the same directory again: nothing is shadowed
      }
      if (earlier === 'parent') {
        this.refuse(
          'duplicate-member',
          `member ${quote(name)} would replace a directory that earlier members are in`,
        );
      }
      this.refuse('duplicate-member', `member ${quote(name)} appears twice`);
    }
    for (let slash = path.indexOf('/'); slash !== -1; slash = path.indexOf('/', slash + 1)) {
      const parent = path.slice(0, slash);
      const type = this.seen.get(parent);
      if (type === 'symlink') {
        this.refuse(
          'duplicate-member',
          `member ${quote(name)} would be written through the symbolic link ${quote(parent)}`,
        );
      }
      if (type !== undefined && type !== 'directory' && type !== 'parent') {
        this.refuse(
          'duplicate-member',
          `member ${quote(name)} is inside ${quote(parent)}, which is not a directory`,
        );
      }
      if (type === undefined) this.seen.set(parent, 'parent');
    }
    if (entry.type === 'symlink') {
      const target = entry.linkName ?? '';
      if (resolveSymlink(path, target) === undefined) {
        this.refuse('link-target', `symbolic link ${quote(name)} -> ${quote(target)} escapes the archive`);
      }
    } else if (entry.type === 'hardlink') {
      const target = entry.linkName ?? '';
      const resolved = hardLinkTarget(target);
      if (resolved === undefined)
        this.refuse('link-target', `hard link ${quote(name)} -> ${quote(target)} escapes the archive`);
      const type = this.seen.get(resolved);
      if (type !== 'file' && type !== 'hardlink') {
        this.refuse(
          'link-target',
          `hard link ${quote(name)} -> ${quote(target)} does not point to an earlier file of the archive`,
        );
      }
    }
    this.seen.set(path, entry.type);
  }
}

export function describeType(type: TarEntryType): string {
  return type === 'hardlink' ? 'hard link' : type === 'symlink' ? 'symbolic link' : type;
}

/**
 * Normalises a member name the way extraction resolves it: empty and `.` components dropped.
 * Refuses (rule `member-name`) what extraction must never see: an absolute path, a `..`
 * component, a backslash (a separator on Windows), a NUL, a drive letter.
 */
export function normalizeMemberPath(name: string, what = 'the archive'): string {
  const refuse = (detail: string): never => {
    throw new TarRuleError(what, 'member-name', `member ${quote(name)} ${detail}`);
  };
  if (name.includes('\0')) refuse('has a NUL character in its name');
  if (name.startsWith('/')) refuse('is an absolute path');
  if (name.includes('\\')) refuse('has a backslash in its name');
  if (/^[A-Za-z]:/.test(name)) refuse('starts with a drive letter');
  const parts: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') refuse('escapes the archive (it contains "..")');
    parts.push(part);
  }
  return parts.join('/');
}

/** A hard link's target as an archive path, or undefined when it cannot be one. */
function hardLinkTarget(target: string): string | undefined {
  try {
    return normalizeMemberPath(target);
  } catch {
    return undefined;
  }
}

/**
 * Where a symbolic link at `path` (normalised) points, as an archive path, or undefined when it
 * leaves the archive (absolute, or more `..` than there are directories above it).
 */
export function resolveSymlink(path: string, target: string): string | undefined {
  if (target.startsWith('/') || /^[A-Za-z]:/.test(target) || target.includes('\\') || target.includes('\0')) {
    return undefined;
  }
  const parts = path.split('/');
  parts.pop();
  for (const part of target.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (parts.length === 0) return undefined;
      parts.pop();
    } else {
      parts.push(part);
    }
  }
  return parts.join('/');
}
