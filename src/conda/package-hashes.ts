/**
 * The sha256 and md5 of a package's bytes as they stream by (SPEC §4: both go into the record),
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

// CommonJS, evaluated by the worker on its own: no file to ship next to the bundle.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const ring = new Uint8Array(workerData.ring);
const sha256 = workerData.sha256 ? createHash('sha256') : undefined;
const md5 = createHash('md5');
parentPort.on('message', (slot) => {
  if (slot === 'end') {
    parentPort.postMessage({ sha256: sha256 && sha256.digest('hex'), md5: md5.digest('hex') });
    return;
  }
  const view = ring.subarray(slot.offset, slot.offset + slot.length);
  if (sha256) sha256.update(view);
  md5.update(view);
  parentPort.postMessage(slot.index);
});
`;

type Slot = { index: number; offset: number; length: number };

/**
 * Hashes on a worker thread. Call `close()` when done (also after a failure): it ends the worker.
 */
export class ThreadHasher implements PackageHasher {
  private readonly ring = new Uint8Array(new SharedArrayBuffer(SLOT_BYTES * SLOTS));
  private readonly worker: Worker;
  private readonly free: number[] = Array.from({ length: SLOTS }, (_, i) => i);
  /** The update waiting for a free slot. */
  private roomWanted: (() => void) | undefined;
  private result: { resolve: (d: PackageDigests) => void; reject: (err: unknown) => void } | undefined;
  private failure: Error | undefined;
  private closed = false;

  constructor(sha256 = true) {
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { ring: this.ring.buffer, sha256 },
    });
    this.worker.on('message', (message: number | PackageDigests) => {
      if (typeof message === 'number') {
        this.free.push(message);
        this.wake();
      } else {
        this.result?.resolve(message);
      }
    });
    this.worker.on('error', (err: Error) => this.fail(err));
    this.worker.on('exit', (code) => {
      if (!this.closed) this.fail(new Error(`the hashing thread ended early (exit code ${code})`));
    });
  }

  update(chunk: Uint8Array): void | Promise<void> {
    if (this.failure) throw this.failure;
    let at = 0;
    while (at < chunk.length) {
      const index = this.free.pop();
      if (index === undefined) return this.afterRoom(chunk.subarray(at));
      const length = Math.min(SLOT_BYTES, chunk.length - at);
      const slot: Slot = { index, offset: index * SLOT_BYTES, length };
      this.ring.set(chunk.subarray(at, at + length), slot.offset);
      this.worker.postMessage(slot);
      at += length;
    }
  }

  digests(): Promise<PackageDigests> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.result = { resolve, reject };
      this.worker.postMessage('end');
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.worker.terminate();
  }

  private async afterRoom(rest: Uint8Array): Promise<void> {
    await new Promise<void>((resolve) => (this.roomWanted = resolve));
    await this.update(rest);
  }

  private wake(): void {
    const wanted = this.roomWanted;
    this.roomWanted = undefined;
    wanted?.();
  }

  private fail(err: Error): void {
    this.failure ??= err;
    this.result?.reject(this.failure);
    this.wake();
  }
}
