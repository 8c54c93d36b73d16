/**
 * The lock that serialises changes to a repository's index.json: the file `.lock`, holding the
 * holder's pid. It is made by hard-linking a file already written (link() fails when the name
 * exists, on every platform), so it never exists without its owner, and released by unlinking it,
 * in one step: a holder killed at any moment leaves a lock whose owner can be checked, and no
 * contender can slip in between two steps of a release. (Earlier versions used a directory with
 * an `owner` file inside; such a lock is still recognised.)
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ProtocolError } from '../errors.js';
import { tempName, type OpenDir } from './confined.js';

const LOCK = '.lock';
const OWNER = 'owner';
const LOCK_TIMEOUT_MS = 120_000;
const OWNER_LIMIT = 64;

/** Runs `work` holding the lock of the repository directory `dir`. */
export async function withLock<T>(dir: OpenDir, work: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + LOCK_TIMEOUT_MS;
  const candidate = tempName();
  await dir.writeNewFile(candidate, `${process.pid}`);
  try {
    for (let wait = 5; ; wait = Math.min(wait * 2, 100)) {
      try {
        await dir.linkFrom(dir, candidate, LOCK);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const stale = await staleOwner(dir);
        if (stale !== undefined) {
          await removeStaleLock(dir, stale);
          continue;
        }
        if (Date.now() > deadline)
          throw new ProtocolError(
            `${dir.location} stayed locked for ${LOCK_TIMEOUT_MS / 1000} s (${dir.location}/${LOCK})`,
          );
        await sleep(wait);
      }
    }
  } finally {
    await dir.remove(candidate);
  }
  try {
    return await work();
  } finally {
    await dir.remove(LOCK);
  }
}

/** The owner recorded in a lock file, or in the `owner` file of an earlier version's lock directory. */
async function ownerOf(dir: OpenDir, name: string, isDirectory: boolean): Promise<string | undefined> {
  const read = isDirectory
    ? dir.withDir([name], (lock) => lock.readFile(OWNER, OWNER_LIMIT))
    : dir.readFile(name, OWNER_LIMIT);
  return (await read.catch(() => undefined))?.toString('utf8');
}

/**
 * What identifies a lock whose owner process is gone (e.g. killed mid-write), or one that is very
 * old: its content; undefined while the lock is held. A lock that is a symbolic link is refused.
 */
async function staleOwner(dir: OpenDir): Promise<string | undefined> {
  const info = await dir.stat(LOCK);
  if (!info) return undefined; // gone meanwhile: try again
  const owner = await ownerOf(dir, LOCK, info.isDirectory());
  const pid = Number(owner);
  // Held for minutes: a holder whose pid was reused by another process (work under the lock
  // takes milliseconds, a garbage collection of a large repository seconds).
  if (Date.now() - info.mtimeMs > 10 * 60_000) return owner ?? '';
  if (owner !== undefined && Number.isInteger(pid) && pid > 0) {
    try {
      process.kill(pid, 0);
      return undefined;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') return owner;
      return undefined;
    }
  }
  // No owner (a directory lock of an earlier version between mkdir and writing its owner).
  return Date.now() - info.mtimeMs > 30_000 ? (owner ?? '') : undefined;
}

/**
 * Removes a stale lock, unless someone replaced it meanwhile: it is moved aside in one step,
 * then checked, and put back if it turns out to be a live lock.
 */
async function removeStaleLock(dir: OpenDir, staleContent: string): Promise<void> {
  const aside = tempName();
  try {
    await dir.rename(LOCK, aside);
  } catch {
    return; // someone else removed it
  }
  const info = await dir.stat(aside).catch(() => undefined);
  const content = info ? ((await ownerOf(dir, aside, info.isDirectory())) ?? '') : '';
  if (info && !info.isDirectory() && content !== staleContent) {
    // A live lock, taken between our check and the move: give it back.
    await dir.linkFrom(dir, aside, LOCK).catch(() => undefined);
  }
  await dir.remove(aside, { recursive: true });
}
