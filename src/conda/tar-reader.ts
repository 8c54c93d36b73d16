/**
 * A synchronous, push-driven tar reader (POSIX ustar, pax extended headers, GNU long names).
 *
 * It is fed the decompressed bytes in chunks of any size and calls the visitor for every member
 * as soon as its header is complete. Being synchronous, it composes with the bzip2 and zstd
 * decoders without any buffering or backpressure between them, so size limits are enforced on the
 * exact bytes as they are produced. It is strict where readers disagree: a link or directory that
 * declares data, an unknown member type, a name that is not UTF-8, a corrupt header.
 *
 * Format reference: POSIX.1-2017 `pax` (ustar interchange format and pax extended headers) and
 * the GNU tar manual (`L`/`K` long-name records, base-256 numbers).
 */
import { ArchiveError, quote } from './archive-error.js';
import { formatBytes } from '../util/format-bytes.js';

export type TarEntryType = 'file' | 'directory' | 'symlink' | 'hardlink';

export interface TarEntry {
  /** The name as stored (after pax / GNU long-name resolution), decoded as UTF-8. */
  readonly name: string;
  /** `name` normalised: no `.` or empty components, no trailing slash. Empty for the root. */
  readonly path: string;
  readonly type: TarEntryType;
  /** Permission bits from the header. */
  readonly mode: number;
  /** Bytes of data that follow (0 for anything but files). */
  readonly size: number;
  /** The target of a symlink or hard link, as stored. */
  readonly linkName?: string;
}

/** Receives a member's data; the chunks are views that are only valid during the call. */
export interface TarDataSink {
  data(chunk: Uint8Array): void;
  end(): void;
}

export interface TarVisitor {
  /** Called once per member; return a sink for its data, or undefined to skip the data. */
  entry(entry: TarEntry): TarDataSink | undefined;
}

/** The longest member name accepted (Linux PATH_MAX). */
export const MAX_PATH_BYTES = 4096;
/** The largest pax or GNU long-name record accepted. */
const MAX_EXTENDED_HEADER = 1024 * 1024;
const BLOCK = 512;

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const latin1 = new TextDecoder('latin1');

type State = 'header' | 'extended' | 'data' | 'skip' | 'ended';

interface Extended {
  path?: string;
  linkPath?: string;
  size?: number;
}

export class TarReader {
  private state: State = 'header';
  private readonly block = new Uint8Array(BLOCK);
  private blockFill = 0;
  /** Bytes still to read in the 'extended', 'data' and 'skip' states. */
  private remaining = 0;
  /** Padding after the current data. */
  private padding = 0;
  private extendedType = 0;
  private extendedBody: Uint8Array = new Uint8Array(0);
  private extendedFill = 0;
  private pending: Extended = {};
  private global: Extended = {};
  private sink: TarDataSink | undefined;
  private offset = 0;
  private headerOffset = 0;
  private members = 0;
  private currentName = '';

  constructor(
    private readonly visitor: TarVisitor,
    /** What the archive is, for messages: `the info archive`, `the package`. */
    private readonly what: string,
  ) {}

  /** True once the end-of-archive marker was read. */
  get ended(): boolean {
    return this.state === 'ended';
  }

  push(chunk: Uint8Array): void {
    let at = 0;
    while (at < chunk.length) {
      switch (this.state) {
        case 'ended':
          // Readers (tarfile, libarchive, GNU tar) stop at the end-of-archive marker: what follows
          // is never extracted. It is padding in practice.
          this.offset += chunk.length - at;
          return;
        case 'header': {
          const take = Math.min(BLOCK - this.blockFill, chunk.length - at);
          this.block.set(chunk.subarray(at, at + take), this.blockFill);
          this.blockFill += take;
          at += take;
          this.offset += take;
          if (this.blockFill === BLOCK) {
            this.blockFill = 0;
            this.onHeader();
          }
          break;
        }
        case 'extended': {
          const take = Math.min(this.remaining, chunk.length - at);
          this.extendedBody.set(chunk.subarray(at, at + take), this.extendedFill);
          this.extendedFill += take;
          this.remaining -= take;
          at += take;
          this.offset += take;
          if (this.remaining === 0) this.onExtendedBody();
          break;
        }
        case 'data': {
          const take = Math.min(this.remaining, chunk.length - at);
          this.sink?.data(chunk.subarray(at, at + take));
          this.remaining -= take;
          at += take;
          this.offset += take;
          if (this.remaining === 0) {
            this.sink?.end();
            this.sink = undefined;
            this.startSkip(this.padding);
          }
          break;
        }
        case 'skip': {
          const take = Math.min(this.remaining, chunk.length - at);
          this.remaining -= take;
          at += take;
          this.offset += take;
          if (this.remaining === 0) this.state = 'header';
          break;
        }
      }
    }
  }

  /** Checks that the archive did not stop in the middle of a member. */
  end(): void {
    if (this.state === 'ended') return;
    if (this.state === 'header' && this.blockFill === 0 && !hasPending(this.pending)) {
      // No end-of-archive marker, but the archive stops between members: tarfile reads that
      // the same way, so it is accepted.
      return;
    }
    const where = this.currentName ? ` in member ${quote(this.currentName)}` : '';
    throw new ArchiveError(`${this.what} is truncated${where}`);
  }

  private startSkip(bytes: number): void {
    this.remaining = bytes;
    this.state = bytes > 0 ? 'skip' : 'header';
  }

  private onHeader(): void {
    const block = this.block;
    this.headerOffset = this.offset - BLOCK;
    if (isZeroBlock(block)) {
      if (hasPending(this.pending)) {
        throw new ArchiveError(`${this.what} has an extended header that is not followed by a member`);
      }
      this.state = 'ended';
      return;
    }
    verifyChecksum(block, () => this.corrupt('the header checksum does not match'));

    const typeflag = block[156] ?? 0;
    const size = this.numeric(124, 12, 'size');
    const type = String.fromCharCode(typeflag);

    if (type === 'x' || type === 'g' || type === 'L' || type === 'K') {
      if (size > MAX_EXTENDED_HEADER) {
        throw new ArchiveError(
          `${this.what} has an extended header of ${formatBytes(size)} (more than ${formatBytes(MAX_EXTENDED_HEADER)})`,
        );
      }
      this.extendedType = typeflag;
      this.extendedBody = new Uint8Array(size);
      this.extendedFill = 0;
      this.remaining = size;
      this.padding = pad(size);
      if (size === 0) this.onExtendedBody();
      else this.state = 'extended';
      return;
    }

    const merged: Extended = { ...this.global, ...this.pending };
    this.pending = {};
    const name = merged.path ?? this.headerName(block);
    this.currentName = name;
    const linkField = merged.linkPath ?? this.decodeName(field(block, 157, 100), 'link target');
    const dataSize = merged.size ?? size;
    const mode = this.numeric(100, 8, 'mode') & 0o7777;

    let entryType: TarEntryType;
    switch (type) {
      case '0':
      case '\0':
      case '7':
        entryType = name.endsWith('/') && type === '\0' ? 'directory' : 'file';
        break;
      case '1':
        entryType = 'hardlink';
        break;
      case '2':
        entryType = 'symlink';
        break;
      case '5':
        entryType = 'directory';
        break;
      case '3':
      case '4':
        throw new ArchiveError(`member ${quote(name)} is a device file, which a package may not contain`);
      case '6':
        throw new ArchiveError(
          `member ${quote(name)} is a named pipe (FIFO), which a package may not contain`,
        );
      default:
        throw new ArchiveError(
          `member ${quote(name)} has the unsupported tar type ${quote(type)} (only files, directories and links are allowed)`,
        );
    }
    if (entryType !== 'file' && dataSize !== 0) {
      // tarfile would read the data as the next headers, tar-stream would skip it: refuse the
      // ambiguity instead of picking one reading.
      throw new ArchiveError(
        `member ${quote(name)} is a ${describeType(entryType)} but declares ${dataSize} bytes of data`,
      );
    }

    const path = normalizeMemberPath(name);
    if (path === '' && entryType !== 'directory') {
      throw new ArchiveError(`member ${quote(name)} has no name`);
    }
    let linkName: string | undefined;
    if (entryType === 'symlink' || entryType === 'hardlink') {
      if (!linkField) throw new ArchiveError(`${describeType(entryType)} ${quote(name)} has an empty target`);
      linkName = linkField;
    }

    this.members++;
    const entry: TarEntry =
      linkName === undefined
        ? { name, path, type: entryType, mode, size: dataSize }
        : { name, path, type: entryType, mode, size: dataSize, linkName };
    this.sink = this.visitor.entry(entry);
    if (dataSize === 0) {
      this.sink?.end();
      this.sink = undefined;
      this.state = 'header';
      return;
    }
    this.remaining = dataSize;
    this.padding = pad(dataSize);
    this.state = 'data';
  }

  private onExtendedBody(): void {
    const body = this.extendedBody;
    this.extendedBody = new Uint8Array(0);
    switch (this.extendedType) {
      case 0x78: // 'x': pax header for the next member
        Object.assign(this.pending, this.parsePax(body));
        break;
      case 0x67: // 'g': pax global header
        Object.assign(this.global, this.parsePax(body));
        break;
      case 0x4c: // 'L': GNU long name of the next member
        this.pending.path = this.decodeName(untilNul(body), 'name');
        break;
      case 0x4b: // 'K': GNU long link target of the next member
        this.pending.linkPath = this.decodeName(untilNul(body), 'link target');
        break;
    }
    this.startSkip(this.padding);
  }

  /** pax records: `<length> <keyword>=<value>\n`, the length counting the whole record. */
  private parsePax(body: Uint8Array): Extended {
    const result: Extended = {};
    let at = 0;
    while (at < body.length) {
      let space = at;
      while (space < body.length && body[space] !== 0x20) space++;
      const lengthText = latin1.decode(body.subarray(at, space));
      const length = /^[0-9]{1,10}$/.test(lengthText) ? Number(lengthText) : NaN;
      if (!(length > space - at + 1) || at + length > body.length || body[at + length - 1] !== 0x0a) {
        // tarfile stops at trailing NUL padding that some writers leave in pax headers.
        if (body.subarray(at).every((byte) => byte === 0)) break;
        this.corrupt('a pax extended header is malformed');
      }
      const record = body.subarray(space + 1, at + length - 1);
      const equals = record.indexOf(0x3d);
      if (equals <= 0) this.corrupt('a pax extended header is malformed');
      const key = latin1.decode(record.subarray(0, equals));
      const value = record.subarray(equals + 1);
      if (key === 'path') result.path = this.decodeName(value, 'name');
      else if (key === 'linkpath') result.linkPath = this.decodeName(value, 'link target');
      else if (key === 'size') {
        const text = latin1.decode(value);
        if (!/^[0-9]{1,16}$/.test(text) || !Number.isSafeInteger(Number(text))) {
          this.corrupt('a pax size record is not a number');
        }
        result.size = Number(text);
      } else if (key.startsWith('GNU.sparse.')) {
        throw new ArchiveError(`${this.what} holds a sparse file, which a package may not contain`);
      }
      at += length;
    }
    return result;
  }

  private headerName(block: Uint8Array): string {
    const name = this.decodeName(field(block, 0, 100), 'name');
    // POSIX ustar ("ustar\0" "00") keeps a prefix; GNU ("ustar  \0") uses those bytes otherwise.
    const magic = latin1.decode(block.subarray(257, 263));
    if (magic === 'ustar\0') {
      const prefix = this.decodeName(field(block, 345, 155), 'name');
      if (prefix) return `${prefix}/${name}`;
    }
    return name;
  }

  private decodeName(bytes: Uint8Array, what: string): string {
    if (bytes.length > MAX_PATH_BYTES) {
      throw new ArchiveError(`${this.what} has a member ${what} longer than ${MAX_PATH_BYTES} bytes`);
    }
    try {
      return utf8.decode(bytes);
    } catch {
      const shown = latin1.decode(bytes).replace(/[^\x20-\x7e]/g, '?');
      throw new ArchiveError(`member ${what} ${quote(shown)} is not valid UTF-8`);
    }
  }

  /** An octal number, or base-256 when the high bit of the first byte is set (GNU). */
  private numeric(offset: number, length: number, what: string): number {
    const bytes = this.block.subarray(offset, offset + length);
    const first = bytes[0] ?? 0;
    if (first & 0x80) {
      if (first !== 0x80) this.corrupt(`the ${what} field is negative`);
      let value = 0;
      for (let i = 1; i < bytes.length; i++) value = value * 256 + (bytes[i] ?? 0);
      if (!Number.isSafeInteger(value)) this.corrupt(`the ${what} field is too large`);
      return value;
    }
    const text = latin1.decode(bytes).replace(/\0.*$/s, '').trim();
    if (text === '') return 0;
    if (!/^[0-7]+$/.test(text)) this.corrupt(`the ${what} field is not an octal number`);
    return parseInt(text, 8);
  }

  private corrupt(detail: string): never {
    const first = this.members === 0 && this.headerOffset === 0;
    const problem = first
      ? `${this.what} is not a tar archive (${detail})`
      : `${this.what} is corrupt at byte ${this.headerOffset} (${detail})`;
    throw new ArchiveError(problem);
  }
}

function hasPending(extended: Extended): boolean {
  return extended.path !== undefined || extended.linkPath !== undefined || extended.size !== undefined;
}

function describeType(type: TarEntryType): string {
  return type === 'hardlink' ? 'hard link' : type === 'symlink' ? 'symbolic link' : type;
}

function pad(size: number): number {
  const rest = size % BLOCK;
  return rest === 0 ? 0 : BLOCK - rest;
}

function isZeroBlock(block: Uint8Array): boolean {
  for (let i = 0; i < BLOCK; i++) if (block[i] !== 0) return false;
  return true;
}

/** The checksum is the sum of the header bytes with the checksum field read as spaces. */
function verifyChecksum(block: Uint8Array, fail: () => never): void {
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : (block[i] ?? 0);
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  const text = latin1.decode(block.subarray(148, 156)).replace(/\0.*$/s, '').trim();
  if (!/^[0-7]+$/.test(text)) fail();
  const stored = parseInt(text, 8);
  // Old writers summed signed chars; tarfile accepts both.
  if (stored !== unsigned && stored !== signed) fail();
}

function field(block: Uint8Array, offset: number, length: number): Uint8Array {
  return untilNul(block.subarray(offset, offset + length));
}

function untilNul(bytes: Uint8Array): Uint8Array {
  const nul = bytes.indexOf(0);
  return nul === -1 ? bytes : bytes.subarray(0, nul);
}

/**
 * Normalises a member name the way extraction resolves it: empty and `.` components dropped.
 * Throws for what extraction must never see: an absolute path, a `..` component, a backslash
 * (a separator on Windows), a NUL.
 */
export function normalizeMemberPath(name: string): string {
  if (name.includes('\0')) throw new ArchiveError(`member ${quote(name)} has a NUL character in its name`);
  if (name.startsWith('/')) throw new ArchiveError(`member ${quote(name)} is an absolute path`);
  if (name.includes('\\')) throw new ArchiveError(`member ${quote(name)} has a backslash in its name`);
  if (/^[A-Za-z]:/.test(name)) throw new ArchiveError(`member ${quote(name)} starts with a drive letter`);
  const parts: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') throw new ArchiveError(`member ${quote(name)} escapes the archive (it contains "..")`);
    parts.push(part);
  }
  return parts.join('/');
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
