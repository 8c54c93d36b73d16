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

/** A name as it appears in messages: JSON-quoted, so control characters and quotes stay visible. */
export function quote(name: string): string {
  const shown = name.length > 200 ? `${name.slice(0, 200)}…` : name;
  return JSON.stringify(shown);
}
