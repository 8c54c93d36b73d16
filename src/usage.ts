/** A mistake in how the program was called or configured: exit status 2, no artifact touched. */
export class UsageError extends Error {
  readonly code = 'USAGE';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'UsageError';
  }
}
