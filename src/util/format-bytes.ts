/** Sizes for people, in binary units: the one spelling of every message and summary. */

const MIB = 1024 * 1024;

/** `1.5 MiB`, `256 MiB`, `812 bytes`. */
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
