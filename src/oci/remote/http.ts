/**
 * HTTP for the registry client: one undici Agent (connection reuse, bounded connections per
 * origin), request and byte counters, and the retry policy for transient failures.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Readable, Transform } from 'node:stream';
import type { Agent as AgentType, Dispatcher } from 'undici';
// The Agent and request() alone, not undici's index, which also loads fetch, WebSocket, cookies
// and more: the CLI starts 60-90 ms sooner (its bundle: 2.3 MB -> 1.5 MB). The index is also what
// puts request() on every dispatcher, so it is called here on ours.
import Agent from 'undici/lib/dispatcher/agent.js';
import dispatchRequest from 'undici/lib/api/api-request.js';
import {
  OciError,
  ProtocolError,
  RegistryError,
  SizeLimitError,
  type DistributionErrorDetail,
} from '../errors.js';

export type Headers = Record<string, string>;

export interface HttpRequest {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  url: URL;
  headers?: Headers;
  /**
   * A body that can be produced again for a retry. An iterable is pulled chunk by chunk as the
   * socket takes them (see countIterable).
   */
  body?: () => Readable | Uint8Array | string | AsyncIterable<Uint8Array>;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string>;
  body: Readable;
}

/** Counters from the client side: what we asked and what went over the wire. */
export class HttpStats {
  requests = 0;
  bytesSent = 0;
  bytesReceived = 0;
  retries = 0;
  readonly byMethod: Record<string, number> = {};

  snapshot(): {
    requests: number;
    bytesSent: number;
    bytesReceived: number;
    retries: number;
    byMethod: Record<string, number>;
  } {
    return {
      requests: this.requests,
      bytesSent: this.bytesSent,
      bytesReceived: this.bytesReceived,
      retries: this.retries,
      byMethod: { ...this.byMethod },
    };
  }
}

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** A server asking to wait longer than this is refused rather than obeyed. */
  maxRetryAfterMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = {
  attempts: 6,
  baseDelayMs: 400,
  maxDelayMs: 15_000,
  maxRetryAfterMs: 120_000,
};

export interface HttpOptions {
  /** Connections per origin (registries and GHCR throttle above a few dozen). */
  connections?: number;
  /** Fail a response whose body stalls this long. */
  bodyTimeoutMs?: number;
  headersTimeoutMs?: number;
  retry?: Partial<RetryPolicy>;
  /** For tests: how to wait between attempts. */
  sleep?: (ms: number) => Promise<void>;
  /** Told of each retry, for progress output. */
  onRetry?: (what: string, err: unknown, delayMs: number) => void;
}

/** URL without query or fragment: query strings of upload sessions and CDN redirects carry signatures. */
export function redactUrl(url: URL | string): string {
  const u = typeof url === 'string' ? new URL(url) : url;
  return `${u.origin}${u.pathname}`;
}

export class HttpClient {
  readonly stats = new HttpStats();
  readonly retry: RetryPolicy;
  private readonly agent: AgentType;
  /** The agent, counting response body bytes as undici hands them over. */
  private readonly dispatcher: Dispatcher;
  private readonly wait: (ms: number) => Promise<void>;
  private readonly onRetry: ((what: string, err: unknown, delayMs: number) => void) | undefined;

  constructor(options: HttpOptions = {}) {
    this.agent = new Agent({
      connections: options.connections ?? 16,
      keepAliveTimeout: 30_000,
      bodyTimeout: options.bodyTimeoutMs ?? 120_000,
      headersTimeout: options.headersTimeoutMs ?? 120_000,
    });
    this.dispatcher = this.agent.compose(countReceived(this.stats));
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
    this.wait = options.sleep ?? ((ms) => sleep(ms));
    this.onRetry = options.onRetry;
  }

  /** One HTTP exchange, no retry. The caller must consume or dump the body. */
  async send(request: HttpRequest): Promise<HttpResponse> {
    this.stats.requests++;
    this.stats.byMethod[request.method] = (this.stats.byMethod[request.method] ?? 0) + 1;
    let body: Dispatcher.RequestOptions['body'];
    const produced = request.body?.();
    if (produced instanceof Readable) {
      body = this.countSent(produced);
    } else if (typeof produced === 'object' && Symbol.asyncIterator in produced) {
      // undici takes async iterables (its Dispatcher.md, `body`), though its types leave them out.
      body = countIterable(produced, this.stats) as unknown as Readable;
    } else if (produced !== undefined) {
      this.stats.bytesSent += typeof produced === 'string' ? Buffer.byteLength(produced) : produced.length;
      body = produced;
    }
    const response = await dispatchRequest.call(this.dispatcher, {
      origin: request.url.origin,
      path: `${request.url.pathname}${request.url.search}`,
      method: request.method,
      headers: request.headers ?? {},
      body,
      // undici closes the connection after every HEAD unless told otherwise (in case a server
      // sends a body with it). Registries don't, and a new connection per HEAD (a TLS handshake
      // on a real network) cost ~10% of the CPU of an upload of 200 small packages.
      ...(request.method === 'HEAD' ? { reset: false } : {}),
    });
    const headers: Record<string, string> = {};
    for (const [key, value] of Object.entries(response.headers)) {
      if (value !== undefined) headers[key.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value;
    }
    // Destroying the body (a reader that stops early) aborts the response, so the connection is
    // not held until the body timeout.
    return { status: response.statusCode, headers, body: response.body };
  }

  /**
   * Runs `attempt` until it succeeds, a non-transient error occurs, or the attempts run out.
   * Transient: connection failures, timeouts, 408, 429, 5xx, GHCR's 403 secondary rate limit.
   */
  async withRetry<T>(what: string, attempt: (n: number) => Promise<T>): Promise<T> {
    for (let n = 1; ; n++) {
      try {
        return await attempt(n);
      } catch (err) {
        const delay = this.retryDelay(err, n);
        if (delay === undefined) throw gaveUp(what, err, n);
        await this.retryAfter(what, err, delay);
      }
    }
  }

  /** Milliseconds to wait before attempt n+1, or undefined when the error is final. */
  retryDelay(err: unknown, n: number): number | undefined {
    if (n >= this.retry.attempts || !isTransient(err)) return undefined;
    const asked = err instanceof RegistryError ? retryAfterMs(err) : undefined;
    if (asked !== undefined) {
      if (asked > this.retry.maxRetryAfterMs) {
        throw new ProtocolError(
          `${err instanceof RegistryError ? `${err.method} ${err.url}` : 'the registry'} asked to wait ${Math.round(asked / 1000)} s before retrying, over the limit of ${this.retry.maxRetryAfterMs / 1000} s`,
          { cause: err },
        );
      }
      return asked;
    }
    const exp = Math.min(this.retry.maxDelayMs, this.retry.baseDelayMs * 2 ** (n - 1));
    return Math.round(exp / 2 + Math.random() * (exp / 2));
  }

  /** Counts and reports a retry of `what`, then waits `delay` ms (the injected `sleep` in tests). */
  retryAfter(what: string, err: unknown, delay: number): Promise<void> {
    this.stats.retries++;
    this.onRetry?.(what, err, delay);
    return this.wait(delay);
  }

  async close(): Promise<void> {
    await this.agent.close();
  }

  /**
   * The request body, counted as undici reads it. When undici gives up on the request it destroys
   * the body, and the source (an open file, a download being copied) must be closed with it.
   * pipe() and two listeners, not pipeline(): pipeline() makes an AbortController per call and
   * aborts it at every finish, building a DOMException with a stack trace each time (with one
   * per response too, that was ~5% of the CPU of an upload of 200 small packages).
   */
  private countSent(source: Readable): Readable {
    const stats = this.stats;
    const counter = new Transform({
      // Sources hand over chunks of up to a few MiB (file reads); with the default 16 KiB
      // buffer every chunk would stop the flow and cost a pause/resume round (measured: about
      // 30% more CPU on a 200 MiB upload).
      highWaterMark: COUNTER_HIGH_WATER_MARK,
      transform(chunk: Buffer, _enc, callback) {
        stats.bytesSent += chunk.length;
        callback(null, chunk);
      },
    });
    source.on('error', (err) => counter.destroy(err));
    // A source destroyed before its end must fail the request, not leave it waiting for the rest.
    source.on('close', () => {
      if (!source.readableEnded && !counter.destroyed) counter.destroy(prematureClose());
    });
    counter.on('close', () => source.destroy());
    // undici listens while it sends; an error after that is already the request's error.
    counter.on('error', () => undefined);
    return source.pipe(counter);
  }
}

const COUNTER_HIGH_WATER_MARK = 4 * 1024 * 1024;

/**
 * An iterable body, counted as undici pulls it. No buffer in between: undici asks for the next
 * chunk only once the socket has taken the last one, and a producer that reuses memory relies on
 * that (see StreamedBlob).
 */
async function* countIterable(
  source: AsyncIterable<Uint8Array>,
  stats: HttpStats,
): AsyncGenerator<Uint8Array> {
  for await (const chunk of source) {
    stats.bytesSent += chunk.length;
    yield chunk;
  }
}

function prematureClose(): Error {
  return Object.assign(new Error('the request body was closed before its end'), {
    code: 'ERR_STREAM_PREMATURE_CLOSE',
  });
}

/**
 * An undici interceptor that adds each response body chunk to `stats.bytesReceived` as undici
 * hands it over: no stream in between, so a counted response costs nothing extra.
 */
function countReceived(stats: HttpStats): Dispatcher.DispatcherComposeInterceptor {
  return (dispatch) => (options, handler) =>
    dispatch(options, {
      onRequestStart: (controller, context) => handler.onRequestStart?.(controller, context),
      onRequestUpgrade: (controller, status, headers, socket) =>
        handler.onRequestUpgrade?.(controller, status, headers, socket),
      onResponseStart: (controller, status, headers, message) =>
        handler.onResponseStart?.(controller, status, headers, message),
      onResponseData: (controller, chunk) => {
        stats.bytesReceived += chunk.length;
        handler.onResponseData?.(controller, chunk);
      },
      onResponseEnd: (controller, trailers) => handler.onResponseEnd?.(controller, trailers),
      onResponseError: (controller, error) => handler.onResponseError?.(controller, error),
    });
}

const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

/**
 * The error to report when retries end. A network failure says only `read ECONNRESET` or
 * `other side closed`: name the request, and keep the original as the cause (still transient, so
 * an outer retry loop may try again). Registry answers and our own typed errors already say what.
 */
export function gaveUp(what: string, err: unknown, attempts: number): unknown {
  if (!(err instanceof Error) || err instanceof OciError || !isTransient(err)) return err;
  const tries = attempts > 1 ? ` (${attempts} attempts)` : '';
  return new OciError(`${what}: ${err.message || (err as { code?: string }).code || 'failed'}${tries}`, {
    cause: err,
  });
}

/** Marks an error as worth retrying (e.g. a body that ended early). */
export class TransientError extends Error {
  readonly code = 'TRANSIENT';
}

export function isTransient(err: unknown): boolean {
  if (err instanceof TransientError) return true;
  if (err instanceof RegistryError) {
    if ([408, 429, 500, 502, 503, 504].includes(err.status)) return true;
    return err.status === 403 && /secondary rate limit/i.test(err.message + JSON.stringify(err.errors));
  }
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' && TRANSIENT_CODES.has(code)) return true;
    if (err.cause) return isTransient(err.cause);
  }
  return false;
}

/**
 * The wait a 429/503 asks for: the Retry-After header (seconds or HTTP date), or GHCR's
 * `retry-after: <N>ms` inside the error message.
 */
export function retryAfterMs(err: RegistryError): number | undefined {
  const header = err.retryAfter;
  if (header !== undefined) {
    const seconds = Number(header);
    if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
    const date = Date.parse(header);
    if (!Number.isNaN(date)) return Math.max(0, date - Date.now());
  }
  for (const e of err.errors) {
    const m = /retry-after:\s*([\d.]+)\s*(ms|s)?/i.exec(e.message);
    if (m) return Number(m[1]) * (m[2]?.toLowerCase() === 's' ? 1000 : 1);
  }
  return undefined;
}

/** Reads a body whole, refusing more than `limit` bytes. */
export async function readBody(body: Readable, limit: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of body) {
      total += (chunk as Buffer).length;
      if (total > limit) throw new SizeLimitError(what, limit);
      chunks.push(chunk as Buffer);
    }
  } catch (err) {
    body.destroy();
    throw err;
  }
  return Buffer.concat(chunks, total);
}

/** Drains a body we do not need, so the connection goes back to the pool. */
export async function discard(body: Readable): Promise<void> {
  try {
    for await (const _ of body) void _;
  } catch {
    // The exchange is over either way.
  }
}

/** Builds the typed error of an unexpected answer, reading the OCI error body if there is one. */
export async function errorFromResponse(
  method: string,
  url: URL,
  response: HttpResponse,
): Promise<RegistryError> {
  let errors: DistributionErrorDetail[] = [];
  if (method !== 'HEAD') {
    try {
      const text = (await readBody(response.body, 64 * 1024, 'error body')).toString('utf8');
      const parsed = JSON.parse(text) as { errors?: unknown };
      if (Array.isArray(parsed.errors)) {
        errors = parsed.errors
          .filter((e): e is Record<string, unknown> => e !== null && typeof e === 'object')
          .map((e) => ({
            code: String(e.code ?? 'UNKNOWN'),
            message: String(e.message ?? ''),
            ...(e.detail !== undefined ? { detail: e.detail } : {}),
          }));
      }
    } catch {
      // Not an OCI error body; the status speaks for itself.
    }
  } else {
    await discard(response.body);
  }
  const error = new RegistryError(method, redactUrl(url), response.status, errors);
  if (response.headers['retry-after'] !== undefined) error.retryAfter = response.headers['retry-after'];
  return error;
}
