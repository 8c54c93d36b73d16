/**
 * A directory tree that nothing inside leads out of (SPEC §10: channels on disk never resolve
 * outside their root). The root the user names may be a symbolic link: it is resolved once, with
 * realpath. Below it no symbolic link is ever followed: every directory is opened one component at
 * a time with O_NOFOLLOW, every file with O_NOFOLLOW and checked with fstat, and a link met on the
 * way is refused with an error that names it.
 *
 * Checking a path and then using it leaves a gap in which a directory can be swapped for a link.
 * On Linux there is none: a directory is held open, and what is below it is reached through
 * `/proc/self/fd/<fd>/<name>`, which the kernel resolves from the open directory itself, whatever
 * happens to the names above it meanwhile (the effect of openat(2) and unlinkat(2), which Node
 * lacks). Elsewhere each component is checked with lstat just before it is used.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, existsSync, lstatSync, openSync, type Dirent, type Stats } from 'node:fs';
import {
  link,
  lstat,
  mkdir,
  open,
  readdir,
  realpath,
  rename,
  rm,
  unlink,
  type FileHandle,
} from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { OciError, ProtocolError, SizeLimitError } from '../errors.js';

/** A symbolic link inside a channel on disk: never followed, refused. */
export class SymbolicLinkError extends OciError {
  override readonly code = 'SYMBOLIC_LINK';
}

// Platforms without them (Windows) get 0: the lstat checks still refuse every link.
const O_NOFOLLOW = constants.O_NOFOLLOW ?? 0;
const O_DIRECTORY = constants.O_DIRECTORY ?? 0;
const DIRECTORY_FLAGS = constants.O_RDONLY | O_DIRECTORY | O_NOFOLLOW;
const READ_FLAGS = constants.O_RDONLY | O_NOFOLLOW;
const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | O_NOFOLLOW;

/** Directories held open and reached through their descriptor (Linux), or checked paths. */
const THROUGH_DESCRIPTORS = process.platform === 'linux' && existsSync('/proc/self/fd');

/** A dot-name no repository content has: a writer's temporary file until its rename. */
export function tempName(): string {
  return `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

export class ConfinedTree {
  private realRoot: Promise<string> | undefined;

  /** `dir`: the root as the user named it; `label`: how messages name the tree. */
  constructor(
    readonly dir: string,
    readonly label: string,
  ) {}

  /** The real path of the root, resolved once; one that does not exist yet is made on the first write. */
  private root(): Promise<string> {
    this.realRoot ??= resolveExisting(this.dir);
    return this.realRoot;
  }

  /** The root, open; undefined when it does not exist (and `create` is not asked). */
  async open(create = false): Promise<OpenDir | undefined> {
    const root = await this.root();
    const opened = openDirectory(root, () => this.refusal('the channel directory'));
    if (opened !== 'missing') return new OpenDir(this, '', root, opened);
    if (!create) return undefined;
    await mkdir(root, { recursive: true });
    return this.open(false);
  }

  /** Runs `work` in the directory at `parts` below the root (undefined when it is missing). */
  async withDir<T>(
    parts: string[],
    work: (dir: OpenDir) => Promise<T>,
    options: { create?: boolean } = {},
  ): Promise<T | undefined> {
    const root = await this.open(options.create);
    if (!root) return undefined;
    try {
      return await root.withDir(parts, work, options);
    } finally {
      await root.close();
    }
  }

  /** The refusal of a link at `what` (a path below the root, or words for the root itself). */
  refusal(what: string): SymbolicLinkError {
    return new SymbolicLinkError(
      `${this.label}: ${what} is a symbolic link; a channel on disk may not contain any`,
    );
  }
}

/** realpath of the nearest ancestor that exists, plus the names below it that do not exist yet. */
async function resolveExisting(dir: string): Promise<string> {
  const missing: string[] = [];
  for (let at = dir; ; at = dirname(at)) {
    try {
      return join(await realpath(at), ...missing.reverse());
    } catch (err) {
      if (errno(err) !== 'ENOENT' || dirname(at) === at) throw err;
      missing.push(basename(at));
    }
  }
}

/**
 * Opens a directory without following a link at its last component: its descriptor (null where
 * paths are used instead), or 'missing'. Synchronous on purpose: opening or closing a directory
 * is a lookup of microseconds, while each trip through libuv's thread pool cost some 100 µs on a
 * busy runner (an operation opens every directory from the root down, and closes them again).
 */
function openDirectory(path: string, refusal: () => Error): number | null | 'missing' {
  if (!THROUGH_DESCRIPTORS) {
    const info = lstatSync(path, { throwIfNoEntry: false });
    if (!info) return 'missing';
    if (info.isSymbolicLink()) throw refusal();
    if (!info.isDirectory()) throw new ProtocolError(`${path} is not a directory`);
    return null;
  }
  try {
    return openSync(path, DIRECTORY_FLAGS);
  } catch (err) {
    const code = errno(err);
    if (code === 'ENOENT') return 'missing';
    if (code !== 'ELOOP' && code !== 'ENOTDIR') throw err;
    // O_NOFOLLOW with O_DIRECTORY answers a link with ENOTDIR or ELOOP: look at what is there.
    const info = lstatSync(path, { throwIfNoEntry: false });
    if (!info) return 'missing';
    if (info.isSymbolicLink()) throw refusal();
    throw new ProtocolError(`${path} is not a directory`, { cause: err });
  }
}

/** One directory of the tree, held open; every operation is on an entry directly inside it. */
export class OpenDir {
  /** Names this very directory: `/proc/self/fd/<fd>` on Linux, else its checked real path. */
  private readonly base: string;

  constructor(
    private readonly tree: ConfinedTree,
    /** The path below the root, for messages ('' for the root). */
    readonly relative: string,
    realPath: string,
    private readonly fd: number | null,
  ) {
    this.base = fd === null ? realPath : `/proc/self/fd/${fd}`;
  }

  /** A path naming the entry `name` of this directory, for one system call. */
  entry(name: string): string {
    if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0'))
      throw new ProtocolError(`"${name}" is not a name inside ${this.tree.label}/${this.relative}`);
    return join(this.base, name);
  }

  /** The directory, for messages: `oci-layout:<root>/<relative>`. */
  get location(): string {
    return this.relative ? `${this.tree.label}/${this.relative}` : this.tree.label;
  }

  private below(name: string): string {
    return this.relative ? `${this.relative}/${name}` : name;
  }

  /** The refusal of the link `name` in this directory. */
  linkRefusal(name: string): SymbolicLinkError {
    return this.tree.refusal(this.below(name));
  }

  async close(): Promise<void> {
    if (this.fd !== null) closeSync(this.fd);
  }

  /** Opens the subdirectory `name`, made first if missing and `create`; undefined when missing. */
  async openChild(name: string, create = false): Promise<OpenDir | undefined> {
    const path = this.entry(name);
    let opened = openDirectory(path, () => this.linkRefusal(name));
    if (opened === 'missing' && create) {
      await mkdir(path).catch((err: unknown) => {
        if (errno(err) !== 'EEXIST') throw err;
      });
      opened = openDirectory(path, () => this.linkRefusal(name));
    }
    if (opened === 'missing') return undefined;
    return new OpenDir(this.tree, this.below(name), path, opened);
  }

  /** Runs `work` in the directory at `parts` below this one (undefined when one is missing). */
  async withDir<T>(
    parts: string[],
    work: (dir: OpenDir) => Promise<T>,
    options: { create?: boolean } = {},
  ): Promise<T | undefined> {
    if (parts.length === 0) return work(this);
    const child = await this.openChild(parts[0]!, options.create);
    if (!child) return undefined;
    try {
      return await child.withDir(parts.slice(1), work, options);
    } finally {
      await child.close();
    }
  }

  /** The entry's own metadata (never its target's); undefined when absent; a link is refused. */
  async stat(name: string): Promise<Stats | undefined> {
    let info: Stats;
    try {
      info = await lstat(this.entry(name));
    } catch (err) {
      if (errno(err) === 'ENOENT') return undefined;
      throw err;
    }
    if (info.isSymbolicLink()) throw this.linkRefusal(name);
    return info;
  }

  /** Opens a regular file for reading; undefined when absent; a link or anything else is refused. */
  async openFile(name: string): Promise<{ handle: FileHandle; info: Stats } | undefined> {
    let handle: FileHandle;
    try {
      handle = await open(this.entry(name), READ_FLAGS);
    } catch (err) {
      const code = errno(err);
      if (code === 'ENOENT') return undefined;
      if (code === 'ELOOP') throw this.linkRefusal(name);
      throw err;
    }
    try {
      const info = await handle.stat();
      if (!info.isFile()) throw new ProtocolError(`${this.tree.label}: ${this.below(name)} is not a file`);
      if (O_NOFOLLOW === 0 && (await this.stat(name))?.ino !== info.ino) throw this.linkRefusal(name);
      return { handle, info };
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  /** A small file read whole; undefined when absent. */
  async readFile(name: string, limit: number): Promise<Buffer | undefined> {
    const opened = await this.openFile(name);
    if (!opened) return undefined;
    try {
      if (opened.info.size > limit)
        throw new SizeLimitError(`${this.tree.label}: ${this.below(name)}`, limit);
      return await opened.handle.readFile();
    } finally {
      await opened.handle.close();
    }
  }

  /** Creates a new file (never an existing one, never through a link) and opens it for writing. */
  createFile(name: string): Promise<FileHandle> {
    return open(this.entry(name), CREATE_FLAGS, 0o644).catch((err: unknown) => {
      if (errno(err) === 'ELOOP' || errno(err) === 'EEXIST') return this.refuseIfLink(name, err);
      throw err;
    });
  }

  private async refuseIfLink(name: string, err: unknown): Promise<never> {
    if ((await lstat(this.entry(name)).catch(() => undefined))?.isSymbolicLink())
      throw this.linkRefusal(name);
    throw err;
  }

  /** Writes a new file whole. */
  async writeNewFile(name: string, bytes: Uint8Array | string): Promise<void> {
    const handle = await this.createFile(name);
    try {
      await handle.writeFile(bytes);
    } finally {
      await handle.close();
    }
  }

  /** Replaces a file whole: a new temporary file, renamed over it. */
  async replaceFile(name: string, bytes: Uint8Array): Promise<void> {
    const temp = tempName();
    try {
      await this.writeNewFile(temp, bytes);
      await this.rename(temp, name);
    } catch (err) {
      await this.remove(temp);
      throw err;
    }
  }

  /** Writes a file unless it exists: link() fails when the name exists, so a concurrent creator's file is kept. */
  async createFileOnce(name: string, bytes: Uint8Array): Promise<void> {
    const temp = tempName();
    await this.writeNewFile(temp, bytes);
    try {
      await this.linkFrom(this, temp, name).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw err;
      });
    } finally {
      await this.remove(temp);
    }
  }

  /** The names of the entries, refusing the first link among them. */
  async namesRefusingLinks(): Promise<string[]> {
    const entries = await this.list();
    const link = entries.find((e) => e.isSymbolicLink());
    if (link) throw this.linkRefusal(link.name);
    return entries.map((e) => e.name);
  }

  /** Every entry, as the directory lists it (a link is listed as a link, never followed). */
  list(): Promise<Dirent[]> {
    return readdir(this.base, { withFileTypes: true });
  }

  /** Renames an entry within this directory (replacing `to`, even a link, never its target). */
  rename(from: string, to: string): Promise<void> {
    return rename(this.entry(from), this.entry(to));
  }

  /** Hard-links `name` of `source` (a regular file: a link is refused) as `to` here; fails when `to` exists. */
  async linkFrom(source: OpenDir, name: string, to: string): Promise<void> {
    const info = await source.stat(name);
    if (!info?.isFile()) throw new ProtocolError(`${this.tree.label}: ${source.below(name)} is not a file`);
    await link(source.entry(name), this.entry(to));
  }

  /** Removes an entry (a link itself, never what it points to); absent is fine. */
  async remove(name: string, options: { recursive?: boolean } = {}): Promise<void> {
    if (options.recursive) return rm(this.entry(name), { recursive: true, force: true });
    await unlink(this.entry(name)).catch((err: unknown) => {
      if (errno(err) !== 'ENOENT') throw err;
    });
  }
}
