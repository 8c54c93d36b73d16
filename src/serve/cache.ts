/**
 * Small building blocks of the gateway: a byte-bounded LRU of computed values that coalesces
 * concurrent computations of one key (single flight), and a counting semaphore.
 */

interface Entry<T> {
  value: Promise<T>;
  bytes: number;
  /** Settled: the value is there (a pending or failed one is not kept). */
  settled: boolean;
}

/**
 * Values by key, least recently used dropped first once `maxBytes` is exceeded. `get` runs the
 * loader once for any number of concurrent callers of the same key; a failure is not cached.
 */
export class LruCache<T> {
  private readonly entries = new Map<string, Entry<T>>();
  private bytes = 0;

  constructor(
    private readonly maxBytes: number,
    private readonly sizeOf: (value: T) => number,
  ) {}

  get size(): number {
    return this.bytes;
  }

  peek(key: string): Promise<T> | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry.value;
  }

  get(key: string, load: () => Promise<T>): Promise<T> {
    const found = this.peek(key);
    if (found) return found;
    const entry: Entry<T> = { value: load(), bytes: 0, settled: false };
    this.entries.set(key, entry);
    entry.value.then(
      (value) => {
        if (this.entries.get(key) !== entry) return;
        entry.settled = true;
        entry.bytes = this.sizeOf(value);
        this.bytes += entry.bytes;
        this.evict();
      },
      () => {
        if (this.entries.get(key) === entry) this.entries.delete(key);
      },
    );
    return entry.value;
  }

  delete(key: string): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    this.bytes -= entry.bytes;
  }

  private evict(): void {
    for (const [key, entry] of this.entries) {
      if (this.bytes <= this.maxBytes) return;
      if (!entry.settled) continue;
      this.entries.delete(key);
      this.bytes -= entry.bytes;
    }
  }
}

/** At most `limit` holders at once; the others wait in order. */
export class Semaphore {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  async acquire(): Promise<() => void> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    };
  }

  async run<T>(work: () => Promise<T>): Promise<T> {
    const release = await this.acquire();
    try {
      return await work();
    } finally {
      release();
    }
  }
}
