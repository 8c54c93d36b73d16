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

const MIB = 1024 * 1024;

/** `1.5 MiB`, `256 MiB`, `812 bytes`: sizes in messages. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} bytes`;
  if (bytes < MIB) return `${trim(bytes / 1024)} KiB`;
  if (bytes < 1024 * MIB) return `${trim(bytes / MIB)} MiB`;
  return `${trim(bytes / (1024 * MIB))} GiB`;
}

function trim(value: number): string {
  if (value >= 100) return String(Math.round(value));
  const tenths = Math.round(value * 10) / 10;
  return Number.isInteger(tenths) ? String(tenths) : tenths.toFixed(1);
}

/** A name as it appears in messages: JSON-quoted, so control characters and quotes stay visible. */
export function quote(name: string): string {
  const shown = name.length > 200 ? `${name.slice(0, 200)}…` : name;
  return JSON.stringify(shown);
}
