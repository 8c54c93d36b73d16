/**
 * One crafted tar for every rule of the tar policy (src/conda/tar-reader.ts), with the detail its
 * refusal must carry. Every place that reads tar (the info archive of a .conda, a .tar.bz2, the
 * info layer) must refuse each of them with the same rule and the same words. Apart from the
 * construct under test, each archive is what the strictest of those places accepts: info/ files
 * and symbolic links staying in info/, an index.json naming the package `evil-1.0-0`.
 */
import type { TarRule } from '../../src/conda/archive-error.js';
import { concat, END, file, gnuLong, header, indexJson, padded, pax, ZERO_BLOCK } from './tar-craft.js';

export const STEM = 'evil-1.0-0';
const INDEX = indexJson('evil');
/** info/index.json: header at 0, data at 512; the next member starts at byte 1024. */
const I = file('info/index.json', INDEX);
const ABOUT = file('info/about.json', '{}');

export interface TarRuleCase {
  rule: TarRule;
  title: string;
  tar: () => Uint8Array;
  detail: string;
  /** Members allowed, where the case needs a small limit. */
  maxMembers?: number;
}

export const TAR_RULE_CASES: TarRuleCase[] = [
  {
    rule: 'lone-zero-block',
    title: 'a zero block, then another member (tar-stream reads it, tarfile stops)',
    tar: () => concat([I, ZERO_BLOCK, ABOUT, END]),
    detail:
      'a zero block at byte 1024 is followed by data at byte 1536 (tarfile ends the archive there, other readers read on)',
  },
  {
    rule: 'data-after-end',
    title: 'a member after the end-of-archive marker',
    tar: () => concat([I, END, ABOUT]),
    detail: 'there is data at byte 2048, after the end-of-archive marker at byte 1024',
  },
  {
    rule: 'data-after-end',
    title: 'a non-zero byte deep in the padding after the marker',
    tar: () => concat([I, END, new Uint8Array(70_000), Buffer.from('x')]),
    detail: 'there is data at byte 72048, after the end-of-archive marker at byte 1024',
  },
  {
    rule: 'missing-end',
    title: 'no end-of-archive marker',
    tar: () => concat([I]),
    detail: 'it ends at byte 1024 without the end-of-archive marker (two zero blocks)',
  },
  {
    rule: 'missing-end',
    title: 'one zero block only',
    tar: () => concat([I, ZERO_BLOCK]),
    detail: 'it ends after one zero block at byte 1024, not the two of the end-of-archive marker',
  },
  {
    rule: 'global-header',
    title: 'a pax global header renaming what follows',
    tar: () => concat([pax([['path', 'info/about.json']], 'g'), I, END]),
    detail: 'a pax global header at byte 0 (readers apply it to different members)',
  },
  {
    rule: 'extended-header',
    title: 'two pax headers for one member (tarfile keeps the first path, tar-stream the last)',
    tar: () => concat([pax([['path', 'info/a.json']]), pax([['path', 'info/b.json']]), I, END]),
    detail: 'two pax headers for one member at byte 1024',
  },
  {
    rule: 'extended-header',
    title: 'two GNU long names for one member',
    tar: () => concat([gnuLong('info/a.json'), gnuLong('info/b.json'), I, END]),
    detail: 'two GNU long name headers for one member at byte 1024',
  },
  {
    rule: 'extended-header',
    title: 'a pax path and a GNU long name for one member',
    tar: () => concat([pax([['path', 'info/a.json']]), gnuLong('info/b.json'), I, END]),
    detail: 'the member at byte 2048 is named by both a pax header and a GNU long name',
  },
  {
    rule: 'extended-header',
    title: 'a pax size that differs from the header size',
    tar: () => concat([pax([['size', '5']]), I, END]),
    detail: `member "info/index.json" has a pax size of 5 bytes but a header size of ${INDEX.length}`,
  },
  {
    rule: 'extended-header',
    title: 'a pax record with an empty value (unsets the field)',
    tar: () => concat([pax([['path', '']]), I, END]),
    detail: 'the pax header at byte 0 unsets "path" (an empty value)',
  },
  {
    rule: 'extended-header',
    title: 'a pax header with a key twice',
    tar: () =>
      concat([
        pax([
          ['path', 'info/a.json'],
          ['path', 'info/index.json'],
        ]),
        I,
        END,
      ]),
    detail: 'the pax header at byte 0 has the key "path" twice',
  },
  {
    rule: 'extended-header',
    title: 'a malformed pax header',
    tar: () => concat([pax('this is not a pax record\n'), I, END]),
    detail: 'the pax header at byte 0 is malformed',
  },
  {
    rule: 'extended-header',
    title: 'a pax header declaring 1 GiB',
    tar: () => concat([header({ name: 'PaxHeader/x', type: 'x', size: 1024 ** 3 }), I, END]),
    detail: 'an extended header of 1 GiB at byte 0 (more than 64 KiB)',
  },
  {
    rule: 'extended-header',
    title: 'a pax header followed by the end of the archive',
    tar: () => concat([I, pax([['path', 'info/x']]), END]),
    detail: 'an extended header is followed by the end of the archive at byte 2048, not by a member',
  },
  {
    rule: 'header-format',
    title: 'an old v7 header (no magic)',
    tar: () => concat([file('info/index.json', INDEX, { format: 'v7' }), END]),
    detail: 'the header at byte 0 is neither POSIX ustar nor GNU tar',
  },
  {
    rule: 'header-format',
    title: 'a GNU header with a name prefix (tarfile reads "info/index.json", others "index.json")',
    tar: () => concat([file('index.json', INDEX, { format: 'gnu', prefix: 'info' }), END]),
    detail:
      'the GNU header at byte 0 has data in the ustar name prefix field (tarfile would prepend it to the name)',
  },
  {
    rule: 'member-type',
    title: 'a regular file whose name ends in "/"',
    tar: () => concat([I, header({ name: 'info/d/', type: '0' }), END]),
    detail: 'member "info/d/" is a regular file but its name ends in "/" (some readers make it a directory)',
  },
  {
    rule: 'member-type',
    title: 'a contiguous file (type 7)',
    tar: () => concat([I, file('info/c', 'x', { type: '7' }), END]),
    detail:
      'member "info/c" has the unsupported tar type "7" (only files, directories and links are allowed)',
  },
  {
    rule: 'member-type',
    title: 'a Solaris extended header (type X, which tarfile reads as pax)',
    tar: () => concat([I, file('info/s', '11 path=x\n', { type: 'X' }), END]),
    detail:
      'member "info/s" has the unsupported tar type "X" (only files, directories and links are allowed)',
  },
  {
    rule: 'member-type',
    title: 'a character device',
    tar: () => concat([I, header({ name: 'info/null', type: '3' }), END]),
    detail: 'member "info/null" is a device file, which a package may not contain',
  },
  {
    rule: 'member-type',
    title: 'a FIFO',
    tar: () => concat([I, header({ name: 'info/fifo', type: '6' }), END]),
    detail: 'member "info/fifo" is a named pipe (FIFO), which a package may not contain',
  },
  {
    rule: 'member-type',
    title: 'a pax sparse file',
    tar: () => concat([I, pax([['GNU.sparse.major', '1']]), file('info/sparse', 'x'), END]),
    detail: 'the member after byte 1024 is a sparse file, which a package may not contain',
  },
  {
    rule: 'link-data',
    title: 'a symbolic link that declares data',
    tar: () =>
      concat([
        I,
        header({ name: 'info/l', type: '2', linkname: 'index.json', size: 5 }),
        padded('hello'),
        END,
      ]),
    detail: 'member "info/l" is a symbolic link but declares 5 bytes of data',
  },
  {
    rule: 'link-data',
    title: 'a directory that declares data (tar-stream reads it as headers)',
    tar: () => concat([I, header({ name: 'info/d', type: '5', size: 1024 }), ABOUT, END]),
    detail: 'member "info/d" is a directory but declares 1024 bytes of data',
  },
  {
    rule: 'link-data',
    title: 'a hard link that declares data (tarfile reads it as headers)',
    tar: () =>
      concat([I, header({ name: 'info/h', type: '1', linkname: 'info/index.json', size: 1024 }), ABOUT, END]),
    detail: 'member "info/h" is a hard link but declares 1024 bytes of data',
  },
  {
    rule: 'member-name',
    title: 'an absolute name',
    tar: () => concat([I, file('/info/x', 'x'), END]),
    detail: 'member "/info/x" is an absolute path',
  },
  {
    rule: 'member-name',
    title: 'a name with ".."',
    tar: () => concat([I, file('info/../../x', 'x'), END]),
    detail: 'member "info/../../x" escapes the archive (it contains "..")',
  },
  {
    rule: 'member-name',
    title: 'a backslash in a name',
    tar: () => concat([I, file('info\\..\\x', 'x'), END]),
    detail: 'member "info\\\\..\\\\x" has a backslash in its name',
  },
  {
    rule: 'member-name',
    title: 'a NUL in a pax name',
    tar: () => concat([I, pax([['path', 'info/a\0b']]), file('info/ab', 'x'), END]),
    detail: 'member "info/a\\u0000b" has a NUL character in its name',
  },
  {
    rule: 'member-name',
    title: 'a pax name longer than PATH_MAX',
    tar: () => concat([I, pax([['path', `info/${'x'.repeat(5000)}`]]), file('info/x', 'x'), END]),
    detail: 'a member name is longer than 4096 bytes',
  },
  {
    rule: 'member-name',
    title: 'an empty name',
    tar: () => concat([I, file('', 'x'), END]),
    detail: 'member "" has no name',
  },
  {
    rule: 'name-encoding',
    title: 'a name that is not UTF-8',
    tar: () => concat([I, header({ name: Buffer.from('info/caf\xe9', 'latin1') }), END]),
    detail: 'member name "info/caf?" is not valid UTF-8',
  },
  {
    rule: 'name-encoding',
    title: 'a link target that is not UTF-8',
    tar: () => concat([I, header({ name: 'info/l', type: '2', patch: [[157, 'caf\xe9']] }), END]),
    detail: 'member link target "caf?" is not valid UTF-8',
  },
  {
    rule: 'duplicate-member',
    title: 'info/index.json twice (first one wins in some readers, the last in others)',
    tar: () => concat([I, file('info/index.json', indexJson('other')), END]),
    detail: 'member "info/index.json" appears twice',
  },
  {
    rule: 'duplicate-member',
    title: 'the same path after normalisation',
    tar: () => concat([I, file('./info//index.json', indexJson('other')), END]),
    detail: 'member "./info//index.json" appears twice',
  },
  {
    rule: 'duplicate-member',
    title: 'a member written through a symbolic link',
    tar: () =>
      concat([I, header({ name: 'info/d', type: '2', linkname: 'sub' }), file('info/d/x', 'x'), END]),
    detail: 'member "info/d/x" would be written through the symbolic link "info/d"',
  },
  {
    rule: 'duplicate-member',
    title: 'a member inside a file',
    tar: () => concat([I, file('info/index.json/x', 'x'), END]),
    detail: 'member "info/index.json/x" is inside "info/index.json", which is not a directory',
  },
  {
    rule: 'duplicate-member',
    title: 'a file where earlier members have a directory',
    tar: () => concat([I, file('info/t/x', 'x'), file('info/t', 'x'), END]),
    detail: 'member "info/t" would replace a directory that earlier members are in',
  },
  {
    rule: 'link-target',
    title: 'a symbolic link out of the archive',
    tar: () => concat([I, header({ name: 'info/e', type: '2', linkname: '../../etc/passwd' }), END]),
    detail: 'symbolic link "info/e" -> "../../etc/passwd" escapes the archive',
  },
  {
    rule: 'link-target',
    title: 'a symbolic link with an empty target',
    tar: () => concat([I, header({ name: 'info/e', type: '2' }), END]),
    detail: 'symbolic link "info/e" has an empty target',
  },
  {
    rule: 'link-target',
    title: 'a hard link to a later member',
    tar: () => concat([header({ name: 'info/h', type: '1', linkname: 'info/index.json' }), I, END]),
    detail: 'hard link "info/h" -> "info/index.json" does not point to an earlier file of the archive',
  },
  {
    rule: 'member-count',
    title: 'more members than allowed (limit 3)',
    tar: () => concat([I, ABOUT, file('info/a', 'a'), file('info/b', 'b'), END]),
    detail: 'it has more than 3 members',
    maxMembers: 3,
  },
];

/** Every rule has a case (a rule added without one fails the suites that use this table). */
export const ALL_TAR_RULES: readonly TarRule[] = [
  'lone-zero-block',
  'data-after-end',
  'missing-end',
  'global-header',
  'extended-header',
  'header-format',
  'member-type',
  'link-data',
  'member-name',
  'name-encoding',
  'duplicate-member',
  'link-target',
  'member-count',
];
