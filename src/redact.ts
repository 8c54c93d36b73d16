/**
 * Secrets in use (passwords, tokens, record keys) are registered here and cut out of everything
 * this program prints. The action also hands them to `core.setSecret`.
 */
const secrets = new Set<string>();
const listeners: ((secret: string) => void)[] = [];

export function registerSecret(secret: string | undefined): void {
  if (!secret || secret.length < 4 || secrets.has(secret)) return;
  secrets.add(secret);
  // The same secret as it appears inside a Basic header or a URL.
  const variants = [Buffer.from(secret).toString('base64'), encodeURIComponent(secret)];
  for (const v of variants) if (v !== secret && v.length >= 4) secrets.add(v);
  for (const listener of listeners) listener(secret);
}

/** Credentials are also masked in the basic form `user:password` base64-encoded. */
export function registerCredentials(username: string, password: string): void {
  registerSecret(password);
  registerSecret(Buffer.from(`${username}:${password}`).toString('base64'));
}

export function onSecret(listener: (secret: string) => void): void {
  listeners.push(listener);
  for (const s of secrets) listener(s);
}

export function redact(text: string): string {
  let out = text;
  for (const secret of [...secrets].sort((a, b) => b.length - a.length)) out = out.split(secret).join('***');
  return out;
}
