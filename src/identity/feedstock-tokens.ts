/**
 * conda-forge feedstock tokens, checked as conda-forge's webservices check them today
 * (conda-forge-webservices `is_valid_feedstock_token`; the tokens are made and registered by
 * conda-smithy's `feedstock_tokens.py`):
 *
 * - The registry (the conda-forge/feedstock-tokens repository) holds `tokens/<feedstock>.json`
 *   per feedstock, named by the feedstock's repository name (`numpy-feedstock`).
 * - The file is `{"tokens": [entry, ...]}`, or one bare entry (the older form). An entry is
 *   `{"salt": hex, "hashed_token": hex, "provider"?: string, "expires_at"?: seconds}`.
 * - `hashed_token` = scrypt(token as UTF-8, salt, N=16384, r=8, p=1, 256 bytes) (py-scrypt's
 *   `scrypt.hash(token, salt, buflen=256)`, whose N, r, p defaults these are); the salt is 64
 *   random bytes.
 * - An entry applies when it has no provider or the same provider as the request (an entry for
 *   `azure` does not accept a request naming none), and when it has no `expires_at` or one later
 *   than now (seconds since the epoch, fractional).
 * - The token is valid when it matches any applying entry. The comparison is constant-time over
 *   the scrypt outputs, and every entry is hashed whatever the outcome, so the time taken does not
 *   say which entry matched.
 *
 * The presented token never appears in a result or an error.
 */
import { scrypt as scryptCallback, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { lstat, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TokenRegistryError } from './errors.js';

export const SCRYPT_PARAMETERS: Readonly<ScryptOptions> = Object.freeze({ N: 16384, r: 8, p: 1 });
export const SCRYPT_KEY_LENGTH = 256;
/** Each entry costs one scrypt (16 MiB, tens of ms); conda-smithy drops expired ones on register. */
export const MAX_TOKENS_PER_FEEDSTOCK = 32;
export const TOKEN_FILE_SIZE_LIMIT = 256 * 1024;

/** Repository names as GitHub allows them; no separators, so no path escapes `tokens/`. */
const FEEDSTOCK_NAME = /^[A-Za-z0-9_.-]+$/;

export type TokenRefusal = 'unknown-feedstock' | 'expired' | 'wrong-provider' | 'wrong-token';

export type FeedstockTokenResult =
  | { verified: true; feedstock: string; provider: string | null; expiresAt: number | null }
  | { verified: false; feedstock: string; reason: TokenRefusal; detail: string };

export interface FeedstockTokenRequest {
  /** The registry's checkout: the directory holding `tokens/`. */
  registry: string;
  /** The feedstock's repository name, e.g. `numpy-feedstock`. */
  feedstock: string;
  token: string;
  /** The CI provider the request names (conda-smithy's `azure`, `github_actions`, ...). */
  provider?: string | null;
  /** Default the clock. */
  now?: Date;
}

interface TokenEntry {
  salt: Buffer;
  hashedToken: Buffer;
  provider: string | null;
  expiresAt: number | null;
}

function scrypt(token: string, salt: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scryptCallback(token, salt, SCRYPT_KEY_LENGTH, SCRYPT_PARAMETERS, (err, key) =>
      err ? reject(err) : resolve(key),
    ),
  );
}

function hexField(value: unknown, field: string, where: string): Buffer {
  if (
    typeof value !== 'string' ||
    value.length === 0 ||
    value.length % 2 !== 0 ||
    !/^[0-9a-fA-F]+$/.test(value)
  )
    throw new TokenRegistryError(`${where}: "${field}" is not hex`);
  return Buffer.from(value, 'hex');
}

function parseEntry(value: unknown, where: string): TokenEntry {
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new TokenRegistryError(`${where} is not an object`);
  const raw = value as Record<string, unknown>;
  const hashedToken = hexField(raw.hashed_token, 'hashed_token', where);
  if (hashedToken.length !== SCRYPT_KEY_LENGTH)
    throw new TokenRegistryError(
      `${where}: "hashed_token" is ${hashedToken.length} bytes, not ${SCRYPT_KEY_LENGTH}`,
    );
  const provider = raw.provider ?? null;
  if (provider !== null && typeof provider !== 'string')
    throw new TokenRegistryError(`${where}: "provider" is not a string`);
  const expiresAt = raw.expires_at ?? null;
  if (expiresAt !== null && (typeof expiresAt !== 'number' || !Number.isFinite(expiresAt)))
    throw new TokenRegistryError(`${where}: "expires_at" is not a number`);
  return { salt: hexField(raw.salt, 'salt', where), hashedToken, provider, expiresAt };
}

/** The entries of a token file, in either form. */
export function parseTokenFile(text: string, where: string): TokenEntry[] {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (cause) {
    throw new TokenRegistryError(`${where} is not JSON`, { cause });
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data))
    throw new TokenRegistryError(`${where} is not a JSON object`);
  const list = 'tokens' in data ? data.tokens : [data];
  if (!Array.isArray(list)) throw new TokenRegistryError(`${where}: "tokens" is not a list`);
  if (list.length > MAX_TOKENS_PER_FEEDSTOCK)
    throw new TokenRegistryError(
      `${where} has ${list.length} tokens, over the limit of ${MAX_TOKENS_PER_FEEDSTOCK}`,
    );
  return list.map((entry, i) => parseEntry(entry, `${where} token ${i}`));
}

async function readTokenFile(path: string): Promise<string | undefined> {
  try {
    const info = await lstat(path);
    if (!info.isFile()) throw new TokenRegistryError(`${path} is not a regular file`);
    if (info.size > TOKEN_FILE_SIZE_LIMIT)
      throw new TokenRegistryError(
        `${path} is ${info.size} bytes, over the ${TOKEN_FILE_SIZE_LIMIT}-byte limit`,
      );
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    if (err instanceof TokenRegistryError) throw err;
    throw new TokenRegistryError(`${path} cannot be read`, { cause: err });
  }
}

function describeProvider(provider: string | null | undefined): string {
  return provider ? `provider ${JSON.stringify(provider)}` : 'no provider';
}

/** Checks a presented feedstock token against the registry. */
export async function verifyFeedstockToken(request: FeedstockTokenRequest): Promise<FeedstockTokenResult> {
  const { feedstock } = request;
  const provider = request.provider ?? null;
  const refused = (reason: TokenRefusal, detail: string): FeedstockTokenResult => ({
    verified: false,
    feedstock,
    reason,
    detail,
  });
  if (!FEEDSTOCK_NAME.test(feedstock) || feedstock === '.' || feedstock === '..')
    return refused('unknown-feedstock', `${JSON.stringify(feedstock)} is not a feedstock repository name`);
  const path = join(request.registry, 'tokens', `${feedstock}.json`);
  const text = await readTokenFile(path);
  if (text === undefined) return refused('unknown-feedstock', `no token is registered for ${feedstock}`);
  const entries = parseTokenFile(text, path);
  if (entries.length === 0) return refused('unknown-feedstock', `no token is registered for ${feedstock}`);

  const now = (request.now ?? new Date()).getTime() / 1000;
  // Hash against every entry, applying or not, so that timing says nothing about which matched.
  const matches = await Promise.all(
    entries.map(async (entry) => timingSafeEqual(await scrypt(request.token, entry.salt), entry.hashedToken)),
  );
  const providerFits = (e: TokenEntry) => e.provider === null || e.provider === provider;
  const current = (e: TokenEntry) => e.expiresAt === null || e.expiresAt > now;
  const matched = entries.filter((_, i) => matches[i]);
  const valid = matched.find((e) => providerFits(e) && current(e));
  if (valid) return { verified: true, feedstock, provider: valid.provider, expiresAt: valid.expiresAt };

  if (request.token.length > 0) {
    const expired = matched.find((e) => providerFits(e));
    if (expired)
      return refused(
        'expired',
        `the token of ${feedstock} expired at ${new Date((expired.expiresAt ?? 0) * 1000).toISOString()}`,
      );
    const other = matched[0];
    if (other)
      return refused(
        'wrong-provider',
        `the token of ${feedstock} is registered for ${describeProvider(other.provider)}; the request names ${describeProvider(provider)}`,
      );
  }
  return refused('wrong-token', `the token does not match any token registered for ${feedstock}`);
}
