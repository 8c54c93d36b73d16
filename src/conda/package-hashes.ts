/**
 * The sha256 and md5 of a package's bytes as they stream by (SPEC §4, §5: repodata needs both),
 * on this thread or on a worker thread.
 *
 * The two hashes are most of the CPU an upload costs (md5 ~1.4 ms and sha256 ~0.6 ms per MiB on
 * the benchmark machine): on this thread they hold up the sending, which shares the thread. A
 * ThreadHasher hashes on another one, so a large package is hashed while it is sent. Its bytes go
 * through a fixed ring of shared memory (one copy, and bounded memory whatever the package size);
 * `update` makes the reader wait while the ring is full.
 */
import { createHash } from 'node:crypto';
import { Worker } from 'node:worker_threads';

export interface PackageDigests {
  /** Lower-case hex; undefined when the hasher was asked not to compute it. */
  sha256: string | undefined;
  md5: string;
}

export interface PackageHasher {
  /** Hashes (or takes a copy of) `chunk`; a promise says to wait before the next chunk. */
  update(chunk: Uint8Array): void | Promise<void>;
  /** The digests of every byte given; call once, after the last update. */
  digests(): Promise<PackageDigests>;
}

/** Hashes on the calling thread. */
export function localHasher(sha256 = true): PackageHasher {
  const sha = sha256 ? createHash('sha256') : undefined;
  const md5 = createHash('md5');
  return {
    update(chunk) {
      sha?.update(chunk);
      md5.update(chunk);
    },
    digests: () => Promise.resolve({ sha256: sha?.digest('hex'), md5: md5.digest('hex') }),
  };
}

/** 8 slots of 1 MiB: the worker may lag 8 MiB behind the reader. */
const SLOT_BYTES = 1024 * 1024;
const SLOTS = 8;

/**
 * The ring's bookkeeping, in shared memory as well: slots are filled and hashed in turn, and the
 * two sides signal each other with Atomics (a postMessage per slot cost 0.4-0.6 ms on each side,
 * profiled under load). A worker that sleeps is woken once half the ring is filled (or at the
 * end), not for every slot: each wake is a futex call and a thread switch.
 */
const FILLED = 0; // slots filled so far (by this thread)
const HASHED = 1; // slots hashed so far (by the worker)
const ENDED = 2; // 1 once every slot was filled
const EVENTS = 3; // changes at every fill and at the end: what the worker waits on
const SLEEPING = 4; // 1 while the worker waits (or is about to)
const LENGTHS = 5; // then the byte count of each slot
const WAKE_AT = SLOTS / 2;

/** Atomics.waitAsync (ES2024; Node has it since 16), which the project's ES2022 lib leaves out. */
function waitAsync(array: Int32Array, index: number, value: number): { async: boolean; value: unknown } {
  type WithWaitAsync = { waitAsync: typeof waitAsync };
  return (Atomics as unknown as WithWaitAsync).waitAsync(array, index, value);
}

// CommonJS, evaluated by the worker on its own: no file to ship next to the bundle.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const ring = new Uint8Array(workerData.ring);
const control = new Int32Array(workerData.control);
const sha256 = workerData.sha256 ? createHash('sha256') : undefined;
const md5 = createHash('md5');
(function hashSlots() {
for (let hashed = 0; ; hashed++) {
  for (;;) {
    const events = Atomics.load(control, ${EVENTS});
    if (Atomics.load(control, ${FILLED}) > hashed) break;
    if (Atomics.load(control, ${ENDED}) === 1) {
      parentPort.postMessage({ sha256: sha256 && sha256.digest('hex'), md5: md5.digest('hex') });
      return;
    }
    Atomics.store(control, ${SLEEPING}, 1);
    if (Atomics.load(control, ${FILLED}) === hashed) Atomics.wait(control, ${EVENTS}, events);
    Atomics.store(control, ${SLEEPING}, 0);
  }
  const slot = hashed % ${SLOTS};
  const view = ring.subarray(slot * ${SLOT_BYTES}, slot * ${SLOT_BYTES} + control[${LENGTHS} + slot]);
  if (sha256) sha256.update(view);
  md5.update(view);
  Atomics.store(control, ${HASHED}, hashed + 1);
  Atomics.notify(control, ${HASHED});
}
})();
`;

/**
 * Hashes on a worker thread. Call `close()` when done (also after a failure): it ends the worker.
 */
export class ThreadHasher implements PackageHasher {
  private readonly ring = new Uint8Array(new SharedArrayBuffer(SLOT_BYTES * SLOTS));
  private readonly control = new Int32Array(new SharedArrayBuffer((LENGTHS + SLOTS) * 4));
  private readonly worker: Worker;
  private filled = 0;
  private result: { resolve: (d: PackageDigests) => void; reject: (err: unknown) => void } | undefined;
  private failure: Error | undefined;
  private closed = false;

  constructor(sha256 = true) {
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { ring: this.ring.buffer, control: this.control.buffer, sha256 },
    });
    this.worker.on('message', (digests: PackageDigests) => this.result?.resolve(digests));
    this.worker.on('error', (err: Error) => this.fail(err));
    this.worker.on('exit', (code) => {
      if (!this.closed) this.fail(new Error(`the hashing thread ended early (exit code ${code})`));
    });
  }

  update(chunk: Uint8Array): void | Promise<void> {
    if (this.failure) throw this.failure;
    let at = 0;
    while (at < chunk.length) {
      const hashed = Atomics.load(this.control, HASHED);
      if (this.filled - hashed === SLOTS) return this.afterRoom(hashed, chunk.subarray(at));
      const slot = this.filled % SLOTS;
      const length = Math.min(SLOT_BYTES, chunk.length - at);
      this.ring.set(chunk.subarray(at, at + length), slot * SLOT_BYTES);
      this.control[LENGTHS + slot] = length;
      Atomics.store(this.control, FILLED, ++this.filled);
      this.signal(this.filled - hashed >= WAKE_AT);
      at += length;
    }
  }

  digests(): Promise<PackageDigests> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.result = { resolve, reject };
      Atomics.store(this.control, ENDED, 1);
      this.signal(true);
    });
  }

  /** Ends the worker; digests not yet delivered are refused. */
  async close(): Promise<void> {
    this.closed = true;
    this.fail(new Error('the hashing thread was closed'));
    await this.worker.terminate();
  }

  /** Tells the worker of a change; wakes it if it sleeps and `wake`. */
  private signal(wake: boolean): void {
    Atomics.add(this.control, EVENTS, 1);
    if (wake && Atomics.load(this.control, SLEEPING) === 1) Atomics.notify(this.control, EVENTS);
  }

  /** Waits (without blocking this thread) until the worker has hashed another slot. */
  private async afterRoom(hashed: number, rest: Uint8Array): Promise<void> {
    const wait = waitAsync(this.control, HASHED, hashed);
    if (wait.async) await wait.value;
    await this.update(rest);
  }

  private fail(err: Error): void {
    this.failure ??= err;
    this.result?.reject(this.failure);
    Atomics.notify(this.control, HASHED); // an update waiting for room throws the failure
  }
}
