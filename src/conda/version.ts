/**
 * conda's version order and version specs, as conda defines them (`conda.models.version`):
 * the order the solver and conda-index use to find the newest build, and the `>=1.2,<2.0a0`,
 * `1.2.*`, `1.2|1.3` language of dependency specs.
 *
 * A version is split into an epoch (`N!`), the version proper and a local part (`+…`); each is split
 * into components at `.` and `_`, each component into runs of digits and non-digits. Digits compare
 * as numbers, other runs as lower-case strings, and strings sort before numbers, except that `dev`
 * sorts before every other string and `post` after every number. A component that starts with a
 * letter gets a leading 0, and missing components count as 0, so `1.1 == 1.1.0` and
 * `1.1a1 < 1.1`. Everything here is pure; bad input throws VersionError.
 */

export class VersionError extends Error {
  override readonly name = 'VersionError';
}

/** One run of a component: a string (`dev` as `DEV`), a number (its decimal digits), or `post`. */
type Atom = { kind: 'str'; value: string } | { kind: 'num'; value: string } | { kind: 'post' };

type Component = Atom[];

const ZERO: Atom = { kind: 'num', value: '0' };
const VALID_CHARS = /^[*.+!_0-9a-z]+$/;
const RUNS = /[0-9]+|\*+|[^0-9*]+/g;

function compareDigits(a: string, b: string): number {
  if (a.length !== b.length) return a.length < b.length ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

function compareAtoms(a: Atom, b: Atom): number {
  if (a.kind === 'str' || b.kind === 'str') {
    if (a.kind !== 'str') return 1; // numbers sort after strings
    if (b.kind !== 'str') return -1;
    return a.value < b.value ? -1 : a.value > b.value ? 1 : 0;
  }
  if (a.kind === 'post' || b.kind === 'post') return a.kind === b.kind ? 0 : a.kind === 'post' ? 1 : -1;
  return compareDigits(a.value, b.value);
}

/** Compares two component lists, missing components and runs counting as 0. */
function compareParts(a: readonly Component[], b: readonly Component[]): number {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a[i] ?? [];
    const y = b[i] ?? [];
    const m = Math.max(x.length, y.length);
    for (let j = 0; j < m; j++) {
      const c = compareAtoms(x[j] ?? ZERO, y[j] ?? ZERO);
      if (c !== 0) return c;
    }
  }
  return 0;
}

function normalizeDigits(digits: string): string {
  const stripped = digits.replace(/^0+/, '');
  return stripped === '' ? '0' : stripped;
}

function parseComponents(parts: string[], original: string): Component[] {
  return parts.map((part) => {
    const runs = part.match(RUNS);
    if (!runs) throw new VersionError(`version "${original}": empty version component`);
    const atoms: Atom[] = runs.map((run): Atom => {
      if (/^[0-9]+$/.test(run)) return { kind: 'num', value: normalizeDigits(run) };
      if (run === 'post') return { kind: 'post' };
      if (run === 'dev') return { kind: 'str', value: 'DEV' };
      return { kind: 'str', value: run };
    });
    return /^[0-9]/.test(part) ? atoms : [ZERO, ...atoms];
  });
}

/** A parsed conda version; compare with `compareVersions`, test prefixes with `startsWith`. */
export class Version {
  /** The epoch, then the components of the version proper. */
  readonly parts: readonly Component[];
  readonly local: readonly Component[];
  /** The lower-cased string it was parsed from. */
  readonly text: string;

  constructor(source: string) {
    let version = source.trim().toLowerCase();
    if (version === '') throw new VersionError('empty version string');
    if (!VALID_CHARS.test(version) && version.includes('-') && !version.includes('_')) {
      // conda accepts dashes as long as there are no underscores, reading them as underscores
      version = version.replaceAll('-', '_');
    }
    if (!VALID_CHARS.test(version)) throw new VersionError(`version "${source}": invalid character(s)`);
    this.text = version;
    const epochSplit = version.split('!');
    if (epochSplit.length > 2) throw new VersionError(`version "${source}": duplicated epoch separator "!"`);
    const epoch = epochSplit.length === 2 ? epochSplit[0]! : '0';
    if (!/^[0-9]+$/.test(epoch)) throw new VersionError(`version "${source}": epoch must be an integer`);
    const localSplit = epochSplit[epochSplit.length - 1]!.split('+');
    if (localSplit.length > 2)
      throw new VersionError(`version "${source}": duplicated local version separator "+"`);
    this.local =
      localSplit.length === 2 ? parseComponents(localSplit[1]!.replaceAll('_', '.').split('.'), source) : [];
    this.parts = parseComponents([epoch, ...localSplit[0]!.replaceAll('_', '.').split('.')], source);
  }

  compare(other: Version): number {
    return compareParts(this.parts, other.parts) || compareParts(this.local, other.local);
  }

  equals(other: Version): boolean {
    return this.compare(other) === 0;
  }

  /**
   * True when `prefix` matches this version up to its last run, the last run as a string prefix
   * (`1.2.3a` starts with `1.2.3` and with `1.2.3a`; `1.20` does not start with `1.2`).
   */
  startsWith(prefix: Version): boolean {
    let mine: readonly Component[];
    let theirs: readonly Component[];
    if (prefix.local.length > 0) {
      if (compareParts(this.parts, prefix.parts) !== 0) return false;
      mine = this.local;
      theirs = prefix.local;
    } else {
      mine = this.parts;
      theirs = prefix.parts;
    }
    const last = theirs.length - 1;
    if (compareParts(mine.slice(0, last), theirs.slice(0, last)) !== 0) return false;
    const a = mine[last] ?? [];
    const b = theirs[last]!;
    const lastRun = b.length - 1;
    if (compareParts([a.slice(0, lastRun)], [b.slice(0, lastRun)]) !== 0) return false;
    const x = a[lastRun] ?? ZERO;
    const y = b[lastRun]!;
    if (y.kind === 'str') return x.kind === 'str' && x.value.startsWith(y.value);
    return compareAtoms(x, y) === 0;
  }

  toString(): string {
    return this.text;
  }
}

const versionCache = new Map<string, Version | VersionError>();

/** A parsed version, cached (records share versions); throws VersionError. */
export function parseVersion(text: string): Version {
  let cached = versionCache.get(text);
  if (cached === undefined) {
    try {
      cached = new Version(text);
    } catch (err) {
      if (!(err instanceof VersionError)) throw err;
      cached = err;
    }
    if (versionCache.size > 100_000) versionCache.clear();
    versionCache.set(text, cached);
  }
  if (cached instanceof VersionError) throw cached;
  return cached;
}

/** The version, or undefined when conda could not parse it either. */
export function tryParseVersion(text: string): Version | undefined {
  try {
    return parseVersion(text);
  } catch {
    return undefined;
  }
}

export function compareVersions(a: string, b: string): number {
  return parseVersion(a).compare(parseVersion(b));
}

// ---------------------------------------------------------------------------------------------
// Version specs

/** Decides whether a version (as written in a record) matches. */
export type VersionMatcher = (version: string) => boolean;

type Operator = '==' | '!=' | '<=' | '>=' | '<' | '>' | '=' | '~=';
const OPERATORS: readonly Operator[] = ['==', '!=', '<=', '>=', '~=', '<', '>', '='];
const OPERATOR_CHARS = '=<>!~';

function versionTest(test: (v: Version) => boolean): VersionMatcher {
  return (text) => {
    const v = tryParseVersion(text);
    return v !== undefined && test(v);
  };
}

function leafMatcher(leaf: string, spec: string): VersionMatcher {
  const s = leaf.trim();
  if (s === '') throw new VersionError(`version spec "${spec}": empty expression`);
  if (s.startsWith('^') || s.endsWith('$')) {
    if (!s.startsWith('^') || !s.endsWith('$'))
      throw new VersionError(`version spec "${spec}": a regex must start with "^" and end with "$"`);
    let regex: RegExp;
    try {
      regex = new RegExp(s);
    } catch (cause) {
      throw new VersionError(`version spec "${spec}": invalid regex`, { cause });
    }
    return (text) => regex.test(text);
  }
  if (OPERATOR_CHARS.includes(s[0]!)) {
    const op = OPERATORS.find((o) => s.startsWith(o));
    let rest = op ? s.slice(op.length) : '';
    if (!op || rest === '' || OPERATOR_CHARS.includes(rest[0]!) || /\s/.test(rest))
      throw new VersionError(`version spec "${spec}": invalid operator in "${s}"`);
    let operator: Operator | '!=startswith' = op;
    if (rest.endsWith('.*')) {
      if (op === '~=') throw new VersionError(`version spec "${spec}": "~=" cannot end in ".*"`);
      rest = rest.slice(0, -2);
      if (op === '!=') operator = '!=startswith';
    }
    const target = parseVersion(rest);
    switch (operator) {
      case '==':
        return versionTest((v) => v.compare(target) === 0);
      case '!=':
        return versionTest((v) => v.compare(target) !== 0);
      case '<=':
        return versionTest((v) => v.compare(target) <= 0);
      case '>=':
        return versionTest((v) => v.compare(target) >= 0);
      case '<':
        return versionTest((v) => v.compare(target) < 0);
      case '>':
        return versionTest((v) => v.compare(target) > 0);
      case '=':
        return versionTest((v) => v.startsWith(target));
      case '!=startswith':
        return versionTest((v) => !v.startsWith(target));
      case '~=': {
        // compatible release: at least the version, and the same release series
        const dots = rest.split('.');
        if (dots.length < 2)
          throw new VersionError(`version spec "${spec}": "~=" needs at least two components`);
        const series = parseVersion(dots.slice(0, -1).join('.'));
        return versionTest((v) => v.compare(target) >= 0 && v.startsWith(series));
      }
    }
  }
  if (s === '*') return () => true;
  if (s.replace(/\*+$/, '').includes('*')) {
    const pattern = s.replaceAll('.', '\\.').replaceAll('+', '\\+').replaceAll('*', '.*');
    const regex = new RegExp(`^(?:${pattern})$`);
    return (text) => regex.test(text);
  }
  if (s.endsWith('*')) {
    const prefix = parseVersion(s.replace(/\*+$/, '').replace(/\.+$/, ''));
    return versionTest((v) => v.startsWith(prefix));
  }
  if (!s.includes('@')) {
    const target = parseVersion(s);
    return versionTest((v) => v.compare(target) === 0);
  }
  return (text) => text === s;
}

/** Parses `a,b|(c,d)`: `,` (and) binds tighter than `|` (or); parentheses group. */
function parseTree(spec: string): VersionMatcher {
  const tokens: string[] = [];
  for (let i = 0; i < spec.length;) {
    const ch = spec[i]!;
    if (/\s/.test(ch)) {
      i++;
    } else if (ch === '^') {
      const end = spec.indexOf('$', i);
      const stop = end === -1 ? spec.length : end + 1;
      tokens.push(spec.slice(i, stop));
      i = stop;
    } else if ('()|,'.includes(ch)) {
      tokens.push(ch);
      i++;
    } else {
      let j = i;
      while (j < spec.length && !'()|,'.includes(spec[j]!)) j++;
      tokens.push(spec.slice(i, j).trim());
      i = j;
    }
  }
  let pos = 0;
  const fail = (why: string): never => {
    throw new VersionError(`version spec "${spec}": ${why}`);
  };
  const parseOr = (): VersionMatcher => {
    const alternatives = [parseAnd()];
    while (tokens[pos] === '|') {
      pos++;
      alternatives.push(parseAnd());
    }
    return alternatives.length === 1 ? alternatives[0]! : (v) => alternatives.some((m) => m(v));
  };
  const parseAnd = (): VersionMatcher => {
    const all = [parseAtom()];
    while (tokens[pos] === ',') {
      pos++;
      all.push(parseAtom());
    }
    return all.length === 1 ? all[0]! : (v) => all.every((m) => m(v));
  };
  const parseAtom = (): VersionMatcher => {
    const token = tokens[pos];
    if (token === undefined) return fail('unexpected end');
    if (token === '(') {
      pos++;
      const inner = parseOr();
      if (tokens[pos] !== ')') fail('unbalanced parentheses');
      pos++;
      return inner;
    }
    if (token === ')' || token === '|' || token === ',') return fail(`unexpected "${token}"`);
    pos++;
    return leafMatcher(token, spec);
  };
  const matcher = parseOr();
  if (pos !== tokens.length) fail(`unexpected "${tokens[pos]}"`);
  return matcher;
}

const specCache = new Map<string, VersionMatcher | VersionError>();

/** A matcher for a conda version spec (`>=1.2,<2.0a0`, `1.2.*`, `1.2|1.3`, `^1\.2$`, `*`). */
export function parseVersionSpec(spec: string): VersionMatcher {
  let cached = specCache.get(spec);
  if (cached === undefined) {
    try {
      cached = parseTree(spec);
    } catch (err) {
      if (!(err instanceof VersionError)) throw err;
      cached = err;
    }
    if (specCache.size > 100_000) specCache.clear();
    specCache.set(spec, cached);
  }
  if (cached instanceof VersionError) throw cached;
  return cached;
}
