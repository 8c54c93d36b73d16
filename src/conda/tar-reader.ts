/**
 * The one tar reader: every tar byte the project accepts goes through it (the info archive and
 * the payload of a package, the staged info layer), with one policy and no options to weaken it.
 *
 * It is fed the decompressed bytes in chunks of any size and calls the visitor for every member
 * as soon as its header is complete. Being synchronous, it composes with the decoders without
 * buffering, so limits apply to the exact bytes as they are produced.
 *
 * The policy accepts what conda (Python's tarfile, through conda-package-handling), rattler (the
 * `tar` crate) and libarchive write for real packages, and refuses every construct that readers
 * would read in different ways, so that what we check is what conda installs and what repodata
 * publishes. Each refusal names its rule (`TarRule`):
 *
 * - `lone-zero-block`, `data-after-end`, `missing-end`: the archive ends at its first zero block,
 *   which must be followed by a second one and then only zeros. tarfile stops at a first zero
 *   block, tar-stream skips it and reads on, GNU tar stops and warns; writers end with two zero
 *   blocks and zero padding to their record size.
 * - `global-header`: a pax global header (typeflag `g`): tarfile applies it to every later member,
 *   tar-stream only to members that have a pax header of their own, libarchive ignores it.
 * - `extended-header`: pax and GNU long-name headers must be well formed, at most one of each kind
 *   per member, not both a pax `path` and a GNU long name (tarfile lets the first header win,
 *   tar-stream the last), no empty values (a "delete" in pax), a pax `size` equal to the header's,
 *   followed by a member, at most 64 KiB.
 * - `header-format`: POSIX ustar or GNU headers only; a GNU header must leave the ustar prefix
 *   field empty (tarfile prepends that field to the name whatever the magic says).
 * - `member-type`: files, directories, symbolic and hard links only; a regular file (`0`) whose
 *   name ends in `/` is refused (tar-stream makes it a directory, tarfile a file).
 * - `link-data`: links and directories declare no data (tarfile reads it as headers, tar-stream
 *   skips it).
 * - `member-name`, `name-encoding`: names are UTF-8, relative, without `..`, backslashes or NUL.
 * - `duplicate-member`: no path twice (after normalisation; a directory may repeat), nothing
 *   written through a symbolic link or inside a file, no file where earlier members need a
 *   directory: the shadowed member would be what one reader keeps and another drops.
 * - `link-target`: links stay inside the archive; a hard link names an earlier file.
 * - `member-count`: at most `maxMembers` members (a limit, with a SizeLimitError cause).
 *
 * The member rules live in tar-members.ts. The rest stays in this one file (about 600 lines) on
 * purpose: the header state machine and the refusals it makes are the policy, read together.
 *
 * Format references: POSIX.1-2017 `pax` (ustar interchange format, pax extended headers), the GNU
 * tar manual (`L`/`K` long-name records, base-256 numbers).
 */
import { SizeLimitError } from '../oci/errors.js';
import { formatBytes } from '../util/format-bytes.js';
import { ArchiveError, quote, TarRuleError, type TarRule } from './archive-error.js';
import { describeType, MemberTable, normalizeMemberPath } from './tar-members.js';

export { normalizeMemberPath, resolveSymlink } from './tar-members.js';

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

export interface TarReaderOptions {
  /** Members (of any type) the archive may hold. */
  maxMembers: number;
}

/** The longest member name accepted (Linux PATH_MAX). */
export const MAX_PATH_BYTES = 4096;
/**
 * The largest pax or GNU long-name record: tarfile writes a path, a link target and a few
 * numbers (under 9 KiB even at PATH_MAX), the `tar` crate only GNU long names.
 */
export const MAX_EXTENDED_HEADER = 64 * 1024;
const BLOCK = 512;
/** The end-of-archive marker: two zero blocks. */
const END_MARKER = 2 * BLOCK;

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const latin1 = new TextDecoder('latin1');
const ZEROS = new Uint8Array(64 * 1024);
/** The magic of POSIX ustar headers (`ustar\0`, any version) and of GNU's (`ustar  \0`). */
const USTAR_MAGIC = [0x75, 0x73, 0x74, 0x61, 0x72, 0x00];
const GNU_MAGIC = [0x75, 0x73, 0x74, 0x61, 0x72, 0x20, 0x20, 0x00];

type State = 'header' | 'extended' | 'data' | 'skip' | 'end';

/** What extended headers said about the next member, and which kinds there were. */
interface Extended {
  paxPath?: string;
  paxLinkPath?: string;
  paxSize?: number;
  longName?: string;
  longLink?: string;
  kinds: string;
}

export class TarReader {
  private state: State = 'header';
  private readonly block = new Uint8Array(BLOCK);
  private blockFill = 0;
  /** Bytes still to read in the 'extended', 'data' and 'skip' states. */
  private remaining = 0;
  /** Padding after the current data. */
  private padding = 0;
  private extendedType = '';
  private extendedBody: Uint8Array = new Uint8Array(0);
  private extendedFill = 0;
  private pending: Extended = { kinds: '' };
  private sink: TarDataSink | undefined;
  private offset = 0;
  private headerOffset = 0;
  /** Where the first zero block starts, once read. */
  private endAt = -1;
  private currentName = '';
  /** The current header is GNU's (no ustar name prefix). */
  private gnu = false;
  private readonly members: MemberTable;

  constructor(
    private readonly visitor: TarVisitor,
    /** What the archive is, for messages: `the info archive "info-….tar.zst"`, `the info layer`. */
    private readonly what: string,
    options: TarReaderOptions,
  ) {
    this.members = new MemberTable(options.maxMembers, (rule, detail, cause) =>
      this.refuse(rule, detail, cause),
    );
  }

  push(chunk: Uint8Array): void {
    let at = 0;
    while (at < chunk.length) {
      switch (this.state) {
        case 'end': {
          const rest = chunk.subarray(at);
          const nonZero = firstNonZero(rest);
          if (nonZero !== -1) this.afterEnd(this.offset + nonZero);
          this.offset += rest.length;
          return;
        }
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

  /** Call once all bytes were pushed: the archive must have ended with its end-of-archive marker. */
  end(): void {
    if (this.state === 'end') {
      if (this.offset - this.endAt >= END_MARKER) return;
      this.refuse(
        'missing-end',
        `it ends after one zero block at byte ${this.endAt}, not the two of the end-of-archive marker`,
      );
    }
    if (this.state === 'header' && this.blockFill === 0 && this.pending.kinds === '') {
      this.refuse(
        'missing-end',
        `it ends at byte ${this.offset} without the end-of-archive marker (two zero blocks)`,
      );
    }
    const where = this.currentName ? ` in member ${quote(this.currentName)}` : '';
    throw new ArchiveError(`${this.what} is truncated${where}`);
  }

  private refuse(rule: TarRule, detail: string, cause?: unknown): never {
    throw new TarRuleError(this.what, rule, detail, cause === undefined ? undefined : { cause });
  }

  private afterEnd(at: number): never {
    if (at < this.endAt + END_MARKER) {
      this.refuse(
        'lone-zero-block',
        `a zero block at byte ${this.endAt} is followed by data at byte ${at} (tarfile ends the archive there, other readers read on)`,
      );
    }
    this.refuse(
      'data-after-end',
      `there is data at byte ${at}, after the end-of-archive marker at byte ${this.endAt}`,
    );
  }

  private startSkip(bytes: number): void {
    this.remaining = bytes;
    this.state = bytes > 0 ? 'skip' : 'header';
  }

  private onHeader(): void {
    const block = this.block;
    this.headerOffset = this.offset - BLOCK;
    if (Buffer.compare(block, ZEROS.subarray(0, BLOCK)) === 0) {
      if (this.pending.kinds !== '') {
        this.refuse(
          'extended-header',
          `an extended header is followed by the end of the archive at byte ${this.headerOffset}, not by a member`,
        );
      }
      this.state = 'end';
      this.endAt = this.headerOffset;
      return;
    }
    verifyChecksum(block, () => this.corrupt('the header checksum does not match'));
    const gnu = matches(block, 257, GNU_MAGIC);
    this.gnu = gnu;
    if (!gnu && !matches(block, 257, USTAR_MAGIC)) {
      this.refuse(
        'header-format',
        `the header at byte ${this.headerOffset} is neither POSIX ustar nor GNU tar`,
      );
    }
    if (gnu && block[345] !== 0) {
      this.refuse(
        'header-format',
        `the GNU header at byte ${this.headerOffset} has data in the ustar name prefix field (tarfile would prepend it to the name)`,
      );
    }
    const size = this.numeric(124, 12, 'size');
    for (const [offset, length, what] of NUMERIC_FIELDS) this.numeric(offset, length, what, true);
    const type = String.fromCharCode(block[156] ?? 0);

    if (type === 'g') {
      this.refuse(
        'global-header',
        `a pax global header at byte ${this.headerOffset} (readers apply it to different members)`,
      );
    }
    if (type === 'x' || type === 'L' || type === 'K') {
      if (this.pending.kinds.includes(type)) {
        this.refuse(
          'extended-header',
          `two ${EXTENDED_NAMES[type]} headers for one member at byte ${this.headerOffset}`,
        );
      }
      if (size > MAX_EXTENDED_HEADER) {
        this.refuse(
          'extended-header',
          `an extended header of ${formatBytes(size)} at byte ${this.headerOffset} (more than ${formatBytes(MAX_EXTENDED_HEADER)})`,
          new SizeLimitError('a tar extended header', MAX_EXTENDED_HEADER),
        );
      }
      this.pending.kinds += type;
      this.extendedType = type;
      this.extendedBody = new Uint8Array(size);
      this.extendedFill = 0;
      this.remaining = size;
      this.padding = pad(size);
      if (size === 0) this.onExtendedBody();
      else this.state = 'extended';
      return;
    }
    this.onMember(type, size);
  }

  private onMember(type: string, headerSize: number): void {
    const block = this.block;
    const extended = this.pending;
    this.pending = { kinds: '' };
    if (extended.paxPath !== undefined && extended.longName !== undefined) {
      this.refuse(
        'extended-header',
        `the member at byte ${this.headerOffset} is named by both a pax header and a GNU long name`,
      );
    }
    if (extended.paxLinkPath !== undefined && extended.longLink !== undefined) {
      this.refuse(
        'extended-header',
        `the member at byte ${this.headerOffset} has its link target in both a pax header and a GNU long name`,
      );
    }
    const name = extended.paxPath ?? extended.longName ?? this.headerName(block);
    this.currentName = name;
    if (extended.paxSize !== undefined && extended.paxSize !== headerSize) {
      this.refuse(
        'extended-header',
        `member ${quote(name)} has a pax size of ${extended.paxSize} bytes but a header size of ${headerSize}`,
      );
    }
    const linkField =
      extended.paxLinkPath ?? extended.longLink ?? this.decodeName(field(block, 157, 100), 'link target');
    const size = headerSize;
    const mode = this.numeric(100, 8, 'mode') & 0o7777;

    let entryType: TarEntryType;
    switch (type) {
      case '0':
        if (name.endsWith('/')) {
          this.refuse(
            'member-type',
            `member ${quote(name)} is a regular file but its name ends in "/" (some readers make it a directory)`,
          );
        }
        entryType = 'file';
        break;
      case '\0':
        // Old tar's regular file; with a trailing slash, its directory (tarfile and tar-stream agree).
        entryType = name.endsWith('/') ? 'directory' : 'file';
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
        return this.refuse(
          'member-type',
          `member ${quote(name)} is a device file, which a package may not contain`,
        );
      case '6':
        return this.refuse(
          'member-type',
          `member ${quote(name)} is a named pipe (FIFO), which a package may not contain`,
        );
      default:
        this.refuse(
          'member-type',
          `member ${quote(name)} has the unsupported tar type ${quote(type)} (only files, directories and links are allowed)`,
        );
    }
    if (entryType !== 'file' && size !== 0) {
      this.refuse(
        'link-data',
        `member ${quote(name)} is a ${describeType(entryType)} but declares ${size} bytes of data`,
      );
    }
    const path = normalizeMemberPath(name, this.what);
    if (path === '' && entryType !== 'directory')
      this.refuse('member-name', `member ${quote(name)} has no name`);
    let linkName: string | undefined;
    if (entryType === 'symlink' || entryType === 'hardlink') {
      if (!linkField)
        this.refuse('link-target', `${describeType(entryType)} ${quote(name)} has an empty target`);
      linkName = linkField;
    }
    const entry: TarEntry =
      linkName === undefined
        ? { name, path, type: entryType, mode, size }
        : { name, path, type: entryType, mode, size, linkName };
    this.members.check(entry, this.what);

    this.sink = this.visitor.entry(entry);
    if (size === 0) {
      this.sink?.end();
      this.sink = undefined;
      this.state = 'header';
      return;
    }
    this.remaining = size;
    this.padding = pad(size);
    this.state = 'data';
  }

  private onExtendedBody(): void {
    const body = this.extendedBody;
    this.extendedBody = new Uint8Array(0);
    const pending = this.pending;
    switch (this.extendedType) {
      case 'x':
        this.parsePax(body, pending);
        break;
      case 'L':
        pending.longName = this.decodeName(untilNul(body), 'name');
        if (pending.longName === '')
          this.refuse('extended-header', `a GNU long name at byte ${this.headerOffset} is empty`);
        break;
      case 'K':
        pending.longLink = this.decodeName(untilNul(body), 'link target');
        if (pending.longLink === '')
          this.refuse('extended-header', `a GNU long link target at byte ${this.headerOffset} is empty`);
        break;
    }
    this.startSkip(this.padding);
  }

  /** pax records: `<length> <keyword>=<value>\n`, the length counting the whole record. */
  private parsePax(body: Uint8Array, into: Extended): void {
    const malformed = (): never =>
      this.refuse('extended-header', `the pax header at byte ${this.headerOffset} is malformed`);
    const keys = new Set<string>();
    let at = 0;
    while (at < body.length) {
      let space = at;
      while (space < body.length && space - at < 10 && body[space] !== 0x20) space++;
      const lengthText = latin1.decode(body.subarray(at, space));
      const length = /^[1-9][0-9]{0,9}$/.test(lengthText) ? Number(lengthText) : NaN;
      if (!(length > space - at + 1) || at + length > body.length || body[at + length - 1] !== 0x0a) {
        // tarfile stops at trailing NUL padding that some writers leave in pax headers.
        if (firstNonZero(body.subarray(at)) === -1) break;
        malformed();
      }
      const record = body.subarray(space + 1, at + length - 1);
      const equals = record.indexOf(0x3d);
      if (equals <= 0) malformed();
      const key = latin1.decode(record.subarray(0, equals));
      const value = record.subarray(equals + 1);
      if (keys.has(key))
        this.refuse(
          'extended-header',
          `the pax header at byte ${this.headerOffset} has the key ${quote(key)} twice`,
        );
      keys.add(key);
      if (key === 'path' || key === 'linkpath' || key === 'size') {
        if (value.length === 0) {
          this.refuse(
            'extended-header',
            `the pax header at byte ${this.headerOffset} unsets ${quote(key)} (an empty value)`,
          );
        }
        if (key === 'path') into.paxPath = this.decodeName(value, 'name');
        else if (key === 'linkpath') into.paxLinkPath = this.decodeName(value, 'link target');
        else {
          const text = latin1.decode(value);
          if (!/^[0-9]{1,16}$/.test(text) || !Number.isSafeInteger(Number(text))) {
            this.refuse('extended-header', `the pax size at byte ${this.headerOffset} is not a number`);
          }
          into.paxSize = Number(text);
        }
      } else if (key.startsWith('GNU.sparse.')) {
        this.refuse(
          'member-type',
          `the member after byte ${this.headerOffset} is a sparse file, which a package may not contain`,
        );
      }
      at += length;
    }
  }

  private headerName(block: Uint8Array): string {
    const name = this.decodeName(field(block, 0, 100), 'name');
    // POSIX ustar keeps a name prefix; in a GNU header that field must be empty (see onHeader).
    if (!this.gnu) {
      const prefix = this.decodeName(field(block, 345, 155), 'name');
      if (prefix) return `${prefix}/${name}`;
    }
    return name;
  }

  private decodeName(bytes: Uint8Array, what: string): string {
    if (bytes.length > MAX_PATH_BYTES) {
      this.refuse('member-name', `a member ${what} is longer than ${MAX_PATH_BYTES} bytes`);
    }
    try {
      return utf8.decode(bytes);
    } catch {
      const shown = latin1.decode(bytes).replace(/[^\x20-\x7e]/g, '?');
      this.refuse('name-encoding', `member ${what} ${quote(shown)} is not valid UTF-8`);
    }
  }

  /**
   * An octal number, or base-256 when the high bit of the first byte is set (GNU). Sizes must
   * not be negative; other fields (times, ids) are only checked to be numbers, as tarfile does.
   */
  private numeric(offset: number, length: number, what: string, signed = false): number {
    const block = this.block;
    const first = block[offset] ?? 0;
    if (first === 0x80 || (signed && first === 0xff)) {
      let value = 0;
      for (let i = offset + 1; i < offset + length; i++) value = value * 256 + (block[i] ?? 0);
      if (!Number.isSafeInteger(value) && !signed) this.corrupt(`the ${what} field is too large`);
      return value;
    }
    if (first & 0x80) this.corrupt(`the ${what} field is negative`);
    const value = octalField(block, offset, length);
    if (value === undefined) this.corrupt(`the ${what} field is not an octal number`);
    return value;
  }

  private corrupt(detail: string): never {
    const first = this.headerOffset === 0;
    const problem = first
      ? `${this.what} is not a tar archive (${detail})`
      : `${this.what} is corrupt at byte ${this.headerOffset} (${detail})`;
    throw new ArchiveError(problem);
  }
}

/** Numbers tarfile parses (and refuses when they are not numbers) besides size and mode. */
const NUMERIC_FIELDS: readonly [number, number, string][] = [
  [108, 8, 'uid'],
  [116, 8, 'gid'],
  [136, 12, 'mtime'],
  [329, 8, 'devmajor'],
  [337, 8, 'devminor'],
];

const EXTENDED_NAMES: Record<string, string> = { x: 'pax', L: 'GNU long name', K: 'GNU long link' };

function pad(size: number): number {
  const rest = size % BLOCK;
  return rest === 0 ? 0 : BLOCK - rest;
}

/** The index of the first byte that is not zero, or -1 (memcmp against zeros, 64 KiB at a time). */
function firstNonZero(bytes: Uint8Array): number {
  for (let at = 0; at < bytes.length; at += ZEROS.length) {
    const piece = bytes.subarray(at, at + ZEROS.length);
    if (Buffer.compare(piece, ZEROS.subarray(0, piece.length)) === 0) continue;
    for (let i = 0; i < piece.length; i++) if (piece[i] !== 0) return at + i;
  }
  return -1;
}

/**
 * The checksum is the sum of the header bytes with the checksum field read as spaces. Only the
 * unsigned sum: tar-stream and GNU tar's default check no other (old writers summed signed chars).
 */
function verifyChecksum(block: Uint8Array, fail: () => never): void {
  let sum = 8 * 0x20;
  for (let i = 0; i < 148; i++) sum += block[i] ?? 0;
  for (let i = 156; i < BLOCK; i++) sum += block[i] ?? 0;
  const stored = octalField(block, 148, 8);
  if (stored === undefined || stored !== sum) fail();
}

/**
 * An octal field as tarfile reads it: up to the first NUL, surrounding whitespace ignored, empty
 * as 0; undefined when anything else is in it. (Byte by byte: a header has seven such fields.)
 */
function octalField(block: Uint8Array, offset: number, length: number): number | undefined {
  let end = offset;
  while (end < offset + length && block[end] !== 0) end++;
  let at = offset;
  while (at < end && isSpace(block[at] ?? 0)) at++;
  while (end > at && isSpace(block[end - 1] ?? 0)) end--;
  let value = 0;
  for (let i = at; i < end; i++) {
    const digit = (block[i] ?? 0) - 0x30;
    if (digit < 0 || digit > 7) return undefined;
    value = value * 8 + digit;
  }
  return value;
}

function isSpace(byte: number): boolean {
  return byte === 0x20 || (byte >= 0x09 && byte <= 0x0d);
}

function matches(block: Uint8Array, offset: number, expected: readonly number[]): boolean {
  for (let i = 0; i < expected.length; i++) if (block[offset + i] !== expected[i]) return false;
  return true;
}

function field(block: Uint8Array, offset: number, length: number): Uint8Array {
  return untilNul(block.subarray(offset, offset + length));
}

function untilNul(bytes: Uint8Array): Uint8Array {
  const nul = bytes.indexOf(0);
  return nul === -1 ? bytes : bytes.subarray(0, nul);
}
