/**
 * A problem found inside a package archive, worded for a conda-forge maintainer. The package
 * reader turns it into a `PackageError` that also names the file.
 */
export class ArchiveError extends Error {
  readonly code = 'ARCHIVE';
  constructor(
    readonly problem: string,
    options?: ErrorOptions,
  ) {
    super(problem, options);
    this.name = 'ArchiveError';
  }
}

/**
 * The rules of the tar policy (tar-reader.ts), each named in its refusals so that a maintainer
 * can tell a damaged archive from one that readers would read in different ways.
 */
export type TarRule =
  | 'lone-zero-block'
  | 'data-after-end'
  | 'missing-end'
  | 'global-header'
  | 'extended-header'
  | 'header-format'
  | 'member-type'
  | 'link-data'
  | 'member-name'
  | 'name-encoding'
  | 'duplicate-member'
  | 'link-target'
  | 'member-count';

/** An archive refused by a rule of the tar policy: `<what>: <detail> (tar rule "<rule>")`. */
export class TarRuleError extends ArchiveError {
  constructor(
    readonly what: string,
    readonly rule: TarRule,
    /** The problem without `what`: the same words whichever archive broke the rule. */
    readonly detail: string,
    options?: ErrorOptions,
  ) {
    super(`${what}: ${detail} (tar rule "${rule}")`, options);
    this.name = 'TarRuleError';
  }
}

/** A name as it appears in messages: JSON-quoted, so control characters and quotes stay visible. */
export function quote(name: string): string {
  const shown = name.length > 200 ? `${name.slice(0, 200)}…` : name;
  return JSON.stringify(shown);
}
