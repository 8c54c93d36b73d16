/** Error messages for people: an error and its causes, each said once. */

/**
 * The message of an error and of every cause below it, one per line. A cause whose message the
 * lines above already contain adds nothing and is left out.
 */
export function describeError(err: unknown): string {
  const lines: string[] = [];
  let current: unknown = err;
  for (let depth = 0; current !== undefined && current !== null && depth < 8; depth++) {
    const text = current instanceof Error ? current.message : String(current);
    if (!lines.some((line) => line.includes(text))) lines.push(text);
    current = current instanceof Error ? current.cause : undefined;
  }
  return lines.join('\n  caused by: ');
}
