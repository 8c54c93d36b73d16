/**
 * Test secrets and the suite-wide scan for them.
 *
 * Every password, token and record key of the suite is made by `testSecret()`, so it holds
 * SECRET_MARKER; secrets that cannot hold it (issued tokens) are registered with
 * `registerTestSecret()`. The global setup tees everything the run prints, the setup file tees
 * each worker's own writes, and helpers that capture output of child processes (the CLI) hand it
 * to `recordOutput()`; at the end, the global teardown fails the run if any of that text holds a
 * secret: as written, base64 (standard and URL-safe, at any alignment: Basic headers, docker
 * config `auth`) or URL-encoded.
 */
import { randomBytes } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';

/** In every test secret. Letters and digits only, so URL-encoding leaves it as it is. */
export const SECRET_MARKER = 'Qx7SecretMarkr';

export const LOG_DIR_VARIABLE = 'CONDA_OCI_TEST_LOG_DIR';

/** A fresh secret holding the marker, e.g. `feedstock-Qx7SecretMarkr-3f9a1c`. */
export function testSecret(label: string): string {
  return `${label}-${SECRET_MARKER}-${randomBytes(4).toString('hex')}`;
}

function logDir(): string | undefined {
  return process.env[LOG_DIR_VARIABLE] || undefined;
}

/** A secret without the marker (e.g. a bearer token): the scan looks for it too. */
export function registerTestSecret(secret: string): void {
  const dir = logDir();
  if (!dir || secret.length < 8) return;
  appendFileSync(join(dir, `secrets-${process.pid}.jsonl`), `${JSON.stringify(secret)}\n`);
}

/** Output the suite captured without printing it (a child process's stdout/stderr, a result file). */
export function recordOutput(label: string, text: string): void {
  const dir = logDir();
  if (!dir || text === '') return;
  appendFileSync(join(dir, `captured-${process.pid}.log`), `--- ${label}\n${text}\n`);
}

/**
 * Substrings that appear in the base64 of any text holding `value`, whatever bytes come before
 * it: one per alignment (offset mod 3), each cut to the characters that depend on `value` only.
 */
export function base64Forms(value: string): string[] {
  const bytes = Buffer.from(value, 'utf8');
  const forms: string[] = [];
  for (let offset = 0; offset < 3; offset++) {
    const padded = Buffer.concat([Buffer.alloc(offset), bytes]);
    const full = Math.floor(padded.length / 3) * 4;
    const form = padded.toString('base64').slice([0, 2, 3][offset], full);
    if (form.length >= 8) forms.push(form, form.replace(/\+/g, '-').replace(/\//g, '_'));
  }
  return [...new Set(forms)];
}

/** Every form of a secret to look for. */
export function secretForms(secret: string): string[] {
  return [
    ...new Set([
      secret,
      encodeURIComponent(secret),
      JSON.stringify(secret).slice(1, -1),
      ...base64Forms(secret),
    ]),
  ];
}

export interface Leak {
  /** Which secret (masked) and in what form. */
  secret: string;
  form: 'plain' | 'encoded';
  /** Where, with the secret cut out. */
  context: string;
}

function mask(secret: string): string {
  return secret.length <= 6 ? '***' : `${secret.slice(0, 3)}…(${secret.length} chars)`;
}

/**
 * Finds the marker in every form, and every registered secret (issued tokens: long, random, sent
 * as they are) as written, in `text`.
 */
export function findLeaks(text: string, secrets: readonly string[] = []): Leak[] {
  const leaks: Leak[] = [];
  const searches: [string, string[]][] = [
    [SECRET_MARKER, secretForms(SECRET_MARKER)],
    ...secrets.map((secret): [string, string[]] => [secret, [secret]]),
  ];
  for (const [secret, forms] of searches) {
    for (const form of forms) {
      const at = text.indexOf(form);
      if (at === -1) continue;
      const context = (
        text.slice(Math.max(0, at - 80), at) +
        '<SECRET>' +
        text.slice(at + form.length, at + form.length + 80)
      ).replace(/\s+/g, ' ');
      leaks.push({ secret: mask(secret), form: form === secret ? 'plain' : 'encoded', context });
    }
  }
  return leaks;
}
