/**
 * A feedstock-tokens registry on disk, in conda-forge's format (tokens/<feedstock>.json holding
 * scrypt hashes; see src/identity/feedstock-tokens.ts), for tests that need a proven requester.
 */
import { randomBytes, scryptSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testSecret } from './secrets.js';

export interface TokenRegistry {
  dir: string;
  /** The token of each feedstock (`<name>-feedstock`), registered with the secret scan. */
  tokens: Record<string, string>;
}

export function makeTokenRegistry(feedstocks: string[]): TokenRegistry {
  const dir = mkdtempSync(join(tmpdir(), 'conda-oci-feedstock-tokens-'));
  mkdirSync(join(dir, 'tokens'));
  const tokens: Record<string, string> = {};
  for (const feedstock of feedstocks) {
    const token = testSecret(`feedstock-token-${feedstock}-${randomBytes(8).toString('hex')}`);
    const salt = randomBytes(64);
    const entry = {
      salt: salt.toString('hex'),
      hashed_token: scryptSync(token, salt, 256, { N: 16384, r: 8, p: 1 }).toString('hex'),
    };
    writeFileSync(join(dir, 'tokens', `${feedstock}.json`), JSON.stringify({ tokens: [entry] }));
    tokens[feedstock] = token;
  }
  return { dir, tokens };
}
