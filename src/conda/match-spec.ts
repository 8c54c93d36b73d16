/**
 * conda match specs as they appear in `depends` (`libzlib >=1.3.1,<2.0a0`, `python 3.12.* *_cpython`,
 * `blas * openblas`, `numpy=1.26`, `pkg[version='>=1',build=py*]`): parsed the way conda's
 * `MatchSpec` reads a spec string, and matched against repodata records by name, version, build
 * and build number. Channel and subdir parts are dropped (a subdir's repodata is one channel).
 * Pure; an unparsable spec throws SpecError.
 */
import { parseVersionSpec, VersionError, type VersionMatcher } from './version.js';

export class SpecError extends Error {
  override readonly name = 'SpecError';
}

/** The record fields a spec can test. */
export interface MatchableRecord {
  name: string;
  version: string;
  build: string;
  build_number: number;
}

export interface MatchSpec {
  /** The exact package name, or `*`. */
  name: string;
  /** The version part as conda normalises it (`=1.2` becomes `1.2*`), if any. */
  version?: string;
  build?: string;
  buildNumber?: string;
  matches(record: MatchableRecord): boolean;
}

const BUILD_FORBIDDEN = '-=,|<>~';
const BEFORE_SEPARATOR_FORBIDDEN = '=!|,<>~';

/** `key=value` pairs of a `[...]` or `(...)` section, values optionally quoted. */
function parsePairs(text: string, spec: string): Record<string, string> {
  const pairs: Record<string, string> = {};
  let i = 0;
  while (i < text.length) {
    while (i < text.length && /[\s,]/.test(text[i]!)) i++;
    if (i >= text.length) break;
    const keyStart = i;
    while (i < text.length && /[A-Za-z0-9_-]/.test(text[i]!)) i++;
    const key = text.slice(keyStart, i);
    if (text[i] !== '=') {
      // a bare word, like `optional` in parentheses
      while (i < text.length && !/[\s,]/.test(text[i]!)) i++;
      continue;
    }
    i++;
    let value: string;
    const quote = text[i];
    if (quote === '"' || quote === "'") {
      const end = text.indexOf(quote, i + 1);
      if (end === -1) throw new SpecError(`spec "${spec}": unterminated quote in "${text}"`);
      value = text.slice(i + 1, end);
      i = end + 1;
    } else {
      const start = i;
      while (i < text.length && !/[\s,]/.test(text[i]!)) i++;
      value = text.slice(start, i);
    }
    if (key === '' || value === '') throw new SpecError(`spec "${spec}": key-value mismatch in "${text}"`);
    pairs[key] = value;
  }
  return pairs;
}

/**
 * Splits `>=1.0 , < 2.0 py34_0` into version and build. The build is the last word after a
 * space or `=` that does not follow an operator, and contains none of `-=,|<>~`; spaces in the
 * version are dropped.
 */
export function splitVersionAndBuild(text: string): { version: string; build?: string } {
  const s = text.trim();
  for (let p = s.length - 2; p >= 1; p--) {
    const ch = s[p]!;
    if (ch !== ' ' && ch !== '=') continue;
    const build = s.slice(p + 1).trim();
    if (build === '' || [...build].some((c) => BUILD_FORBIDDEN.includes(c) || /\s/.test(c))) continue;
    if (BEFORE_SEPARATOR_FORBIDDEN.includes(s[p - 1]!)) continue;
    const version = s.slice(0, p).replace(/\s+/g, '');
    if (version === '') continue;
    return { version, build };
  }
  return { version: s.replace(/\s+/g, '') };
}

function globMatcher(pattern: string): (value: string) => boolean {
  if (pattern.startsWith('^') && pattern.endsWith('$')) {
    const regex = new RegExp(pattern);
    return (value) => regex.test(value);
  }
  if (pattern.includes('*')) {
    const escaped = pattern
      .split('*')
      .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*');
    const regex = new RegExp(`^(?:${escaped})$`);
    return (value) => regex.test(value);
  }
  return (value) => value === pattern;
}

function buildNumberMatcher(spec: string, whole: string): (n: number) => boolean {
  const s = spec.trim();
  if (/^[0-9]+$/.test(s)) return (n) => n === Number(s);
  if (s === '*') return () => true;
  const m = /^(==|!=|<=|>=|<|>|=)([0-9]+)$/.exec(s);
  if (!m) throw new SpecError(`spec "${whole}": build_number "${spec}" is not understood`);
  const value = Number(m[2]);
  switch (m[1]) {
    case '!=':
      return (n) => n !== value;
    case '<=':
      return (n) => n <= value;
    case '>=':
      return (n) => n >= value;
    case '<':
      return (n) => n < value;
    case '>':
      return (n) => n > value;
    default:
      return (n) => n === value;
  }
}

const cache = new Map<string, MatchSpec | SpecError>();

/** Parses a match spec string (cached); throws SpecError for what conda would not accept either. */
export function parseMatchSpec(spec: string): MatchSpec {
  let cached = cache.get(spec);
  if (cached === undefined) {
    try {
      cached = parseUncached(spec);
    } catch (err) {
      if (err instanceof SpecError) cached = err;
      else if (err instanceof VersionError || err instanceof SyntaxError)
        cached = new SpecError(`spec "${spec}": ${err.message}`, { cause: err });
      else throw err;
    }
    if (cache.size > 100_000) cache.clear();
    cache.set(spec, cached);
  }
  if (cached instanceof SpecError) throw cached;
  return cached;
}

function parseUncached(spec: string): MatchSpec {
  let s = spec;
  if (s.endsWith('@')) throw new SpecError(`spec "${spec}": feature specs are not supported`);
  const hash = s.indexOf('#');
  if (hash !== -1) s = s.slice(0, hash);
  s = s.split(' if ', 1)[0]!.trim();
  if (/\.(conda|tar\.bz2)$/.test(s) || s.includes('://'))
    throw new SpecError(`spec "${spec}": package file and URL specs are not supported`);

  let brackets: Record<string, string> = {};
  const open = s.indexOf('[');
  if (open !== -1) {
    const close = s.lastIndexOf(']');
    if (close < open) throw new SpecError(`spec "${spec}": unbalanced brackets`);
    brackets = parsePairs(s.slice(open + 1, close), spec);
    s = s.slice(0, open) + s.slice(close + 1);
  }
  const paren = s.indexOf('(');
  if (paren !== -1) {
    const close = s.lastIndexOf(')');
    if (close > paren) s = s.slice(0, paren) + s.slice(close + 1);
  }
  // `channel::name` or `channel:namespace:name`
  const colons = s.split(':');
  s = colons[colons.length - 1]!.trim();

  const nameMatch = /^([^ =<>!~]+)?([><!=~ ].+)?$/s.exec(s);
  const name = nameMatch?.[1];
  if (!name) throw new SpecError(`spec "${spec}": no package name`);
  let version: string | undefined;
  let build: string | undefined;
  const rest = nameMatch[2]?.trim();
  if (rest) {
    const split = splitVersionAndBuild(rest);
    version = split.version;
    build = split.build;
    if (version.startsWith('=')) {
      const test = version.slice(1);
      if (version.startsWith('==') && build === undefined) version = version.slice(2);
      else if (!/[=,|]/.test(test)) version = build === undefined && !test.endsWith('*') ? `${test}*` : test;
    }
  }
  if (brackets.version !== undefined) version = brackets.version;
  if (brackets.build !== undefined) build = brackets.build;
  const buildNumber = brackets.build_number;

  const versionMatcher: VersionMatcher | undefined = version ? parseVersionSpec(version) : undefined;
  const buildMatcher = build ? globMatcher(build) : undefined;
  const numberMatcher = buildNumber ? buildNumberMatcher(buildNumber, spec) : undefined;
  const nameMatcher = globMatcher(name);
  return {
    name,
    ...(version !== undefined ? { version } : {}),
    ...(build !== undefined ? { build } : {}),
    ...(buildNumber !== undefined ? { buildNumber } : {}),
    matches: (record) =>
      nameMatcher(record.name) &&
      (!versionMatcher || versionMatcher(record.version)) &&
      (!buildMatcher || buildMatcher(record.build)) &&
      (!numberMatcher || numberMatcher(record.build_number)),
  };
}
