/**
 * A loopback reverse proxy for fault injection in front of a real registry.
 *
 * The client talks to `proxy.url` as if it were the registry; every request is forwarded to the
 * upstream unless a rule says otherwise. Bodies are streamed both ways (a 200 MB blob is never
 * buffered), byte counts are recorded per request, and `Location` / `Link` headers that point at
 * the upstream are rewritten to point at the proxy, so upload sessions keep going through it.
 *
 *   const proxy = await startProxy(registry.url);
 *   proxy.on({ method: 'PATCH', times: 1 }, actions.reset('request', 1024));
 *   proxy.on({ method: 'GET', path: /\/blobs\/sha256:/ }, actions.corrupt());
 *   proxy.on({ path: '/v2/_catalog' }, actions.status(404));
 *   proxy.chaos({ seed: 42, probability: 0.1, actions: [actions.status(503), actions.reset('response', 0)] });
 *   ... proxy.count({ method: 'POST' }), proxy.bytes({ method: 'PUT' }) ...
 *
 * Rules are data (`ProxyAction` objects, built by the `actions` helpers or by hand), checked in the
 * order they were added; the first rule that matches and still has uses left decides. A rule's
 * action may also be a function of the request (return `undefined` to let later rules decide).
 */
import { randomUUID } from 'node:crypto';
import {
  Agent,
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Transform, type TransformCallback } from 'node:stream';

// ---------------------------------------------------------------------------------------------
// Types

export interface ProxyRequest {
  id: number;
  method: string;
  /** Path and query, as the client sent them. */
  path: string;
  /** Path without the query. */
  pathname: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
}

export type PathMatcher = string | RegExp | ((path: string) => boolean);

export interface MatchSpec {
  method?: string | readonly string[];
  /** A string matches the pathname exactly; a RegExp is tested against path plus query. */
  path?: PathMatcher;
  /** Any extra condition. */
  where?: (request: ProxyRequest) => boolean;
}

export type Matcher = MatchSpec | ((request: ProxyRequest) => boolean);

export interface RuleOptions {
  /** Apply to this many matching requests, then stop matching. Default: unlimited. */
  times?: number;
  /** Let this many matching requests pass (forwarded) before applying. Default 0. */
  skip?: number;
}

export type Body = string | Uint8Array | Record<string, unknown> | unknown[];

export interface ResponseRewrite {
  status?: number;
  /** Headers to set; `null` removes one. */
  headers?: Record<string, string | null>;
  /** Replace the body (upstream body is discarded; content-length is recomputed). */
  body?: Body;
}

export type StreamSide = 'request' | 'response';

export type ProxyAction =
  /** Forward to the upstream, optionally rewriting the request and/or the response. */
  | {
      type: 'forward';
      /** Set (or, with `null`, remove) query parameters before forwarding. */
      setQuery?: Record<string, string | null>;
      /** Replace the path (without query) before forwarding. */
      setPath?: string;
      setRequestHeaders?: Record<string, string | null>;
      response?: ResponseRewrite;
    }
  /** Answer without asking the upstream. */
  | { type: 'respond'; status: number; headers?: Record<string, string>; body?: Body }
  /** TCP-reset the client connection after `afterBytes` body bytes of the request or the response. */
  | { type: 'reset'; side: StreamSide; afterBytes: number }
  /** Stop passing body bytes after `afterBytes` for `ms` (forever if absent: until someone gives up). */
  | { type: 'stall'; side: StreamSide; afterBytes?: number; ms?: number }
  /** Send the response headers as they are, then only `afterBytes` body bytes, then close cleanly. */
  | { type: 'truncate'; afterBytes: number }
  /** Flip the bits of one response body byte (headers, incl. length and digest, unchanged). */
  | { type: 'corrupt'; offset?: number; xor?: number }
  /** Wait, then apply `then` (default: forward). */
  | { type: 'delay'; ms: number; then?: ProxyAction }
  /**
   * Answer a redirect. Without `location`, to the proxy's redirect target: another origin
   * (`http://localhost:<other port>`) that records the headers it receives and serves the
   * upstream's answer to the original request (authenticated with the original request's
   * credentials, like a registry's pre-signed storage URL).
   */
  | { type: 'redirect'; status?: 301 | 302 | 303 | 307 | 308; location?: string }
  /**
   * Send the request to the upstream twice, one after the other (as a retrying middlebox does),
   * and answer with the first or the second answer (default: the second). The request body is
   * buffered (up to 64 MiB); so are both answers.
   */
  | { type: 'duplicate'; respondWith?: 'first' | 'second' }
  /** Escape hatch: handle the exchange yourself. */
  | { type: 'handle'; handler: (req: IncomingMessage, res: ServerResponse, context: HandleContext) => void };

export interface HandleContext {
  request: ProxyRequest;
  upstream: string;
  /** Forward as the proxy would (honours the action's rewrites). */
  forward(action?: Extract<ProxyAction, { type: 'forward' }>): void;
}

export type ActionSource = ProxyAction | ((request: ProxyRequest) => ProxyAction | undefined);

export interface ProxyRule {
  readonly matcher: Matcher;
  /** How many requests this rule decided. */
  readonly hits: number;
  remove(): void;
}

export interface ProxyRecord {
  id: number;
  method: string;
  path: string;
  /** The action applied (`forward` when no rule matched). */
  action: string;
  /** The status sent to the client, if headers were sent. */
  status: number | undefined;
  /** Body bytes received from the client. */
  requestBytes: number;
  /** Body bytes sent to the client. */
  responseBytes: number;
  /** Set when the exchange was cut (injected or not). */
  error: string | undefined;
  finished: boolean;
}

export interface RedirectTargetRecord {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
}

export interface RedirectTarget {
  /** `http://localhost:<port>`: a different origin from the proxy and the registry. */
  readonly url: string;
  readonly requests: RedirectTargetRecord[];
  /** Answer 400 to requests that carry `Authorization` (as S3 pre-signed URLs do). */
  rejectAuthorization: boolean;
}

export interface ChaosOptions {
  seed: number;
  /** Chance in [0, 1] that a matching request gets a fault. */
  probability: number;
  /** Faults to choose from, uniformly. */
  actions: readonly ProxyAction[];
  match?: Matcher;
  /** At most this many faults in total. */
  limit?: number;
}

export interface CountOptions extends MatchSpec {
  /** Only requests whose final status is this. */
  status?: number;
}

export interface TestProxy {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** `127.0.0.1:<port>` */
  readonly host: string;
  readonly upstream: string;
  readonly records: ProxyRecord[];
  readonly redirectTarget: RedirectTarget;
  on(matcher: Matcher, action: ActionSource, options?: RuleOptions): ProxyRule;
  /** Seeded random faults; the schedule is reproducible for a given order of requests. */
  chaos(options: ChaosOptions): ProxyRule;
  count(filter?: CountOptions): number;
  bytes(filter?: CountOptions): { request: number; response: number };
  /** Counts and bytes per `METHOD pathname` (upload-session UUIDs folded into `<uuid>`). */
  summary(): Map<string, { count: number; requestBytes: number; responseBytes: number }>;
  /** Remove every rule. */
  clearRules(): void;
  /** Forget the records (rules stay). */
  clearRecords(): void;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Action helpers

function errorBody(code: string, message: string): Record<string, unknown> {
  return { errors: [{ code, message, detail: null }] };
}

const STATUS_CODES: Record<number, string> = {
  400: 'BAD_REQUEST',
  401: 'UNAUTHORIZED',
  403: 'DENIED',
  404: 'NOT_FOUND',
  405: 'UNSUPPORTED',
  416: 'RANGE_INVALID',
  429: 'TOOMANYREQUESTS',
  500: 'UNKNOWN',
  502: 'UNKNOWN',
  503: 'UNAVAILABLE',
  504: 'UNKNOWN',
};

export const actions = {
  forward: (options: Omit<Extract<ProxyAction, { type: 'forward' }>, 'type'> = {}): ProxyAction => ({
    type: 'forward',
    ...options,
  }),
  /** A status with a distribution-style error body (or the given body). */
  status: (status: number, body?: Body, headers?: Record<string, string>): ProxyAction => ({
    type: 'respond',
    status,
    body: body ?? errorBody(STATUS_CODES[status] ?? 'UNKNOWN', `injected ${status} by the test proxy`),
    ...(headers ? { headers } : {}),
  }),
  /** 429 with an optional `Retry-After` (seconds or an HTTP date). */
  tooManyRequests: (retryAfter?: number | string): ProxyAction => ({
    type: 'respond',
    status: 429,
    body: errorBody('TOOMANYREQUESTS', 'too many requests'),
    ...(retryAfter !== undefined ? { headers: { 'retry-after': String(retryAfter) } } : {}),
  }),
  /** GHCR's 429: no Retry-After header, the wait only in the error message text. */
  ghcrTooManyRequests: (retryAfterMs: number): ProxyAction => ({
    type: 'respond',
    status: 429,
    body: errorBody('TOOMANYREQUESTS', `retry-after: ${retryAfterMs}ms, allowed: 44000/minute`),
  }),
  /** GHCR's answer to a manifest DELETE. */
  unsupported: (): ProxyAction => ({
    type: 'respond',
    status: 405,
    body: errorBody('UNSUPPORTED', 'The operation is unsupported.'),
  }),
  notFound: (code = 'NOT_FOUND'): ProxyAction => ({
    type: 'respond',
    status: 404,
    body: errorBody(code, 'not found (injected by the test proxy)'),
  }),
  reset: (side: StreamSide, afterBytes = 0): ProxyAction => ({ type: 'reset', side, afterBytes }),
  stall: (side: StreamSide, afterBytes = 0, ms?: number): ProxyAction => ({
    type: 'stall',
    side,
    afterBytes,
    ...(ms !== undefined ? { ms } : {}),
  }),
  truncate: (afterBytes: number): ProxyAction => ({ type: 'truncate', afterBytes }),
  corrupt: (offset = 0, xor = 0xff): ProxyAction => ({ type: 'corrupt', offset, xor }),
  delay: (ms: number, then?: ProxyAction): ProxyAction => ({ type: 'delay', ms, ...(then ? { then } : {}) }),
  redirect: (options: { status?: 301 | 302 | 303 | 307 | 308; location?: string } = {}): ProxyAction => ({
    type: 'redirect',
    ...options,
  }),
  /**
   * Forward a cross-repository mount (`POST .../blobs/uploads/?mount=&from=`) without its mount
   * parameters: the registry starts an ordinary upload session and answers 202, as a registry
   * does when it will not mount.
   */
  refuseMount: (): ProxyAction => ({ type: 'forward', setQuery: { mount: null, from: null } }),
  /** Forward, then answer with another status / headers / body. */
  rewriteResponse: (response: ResponseRewrite): ProxyAction => ({ type: 'forward', response }),
  /** The request reaches the upstream twice; the client sees one answer. */
  duplicate: (respondWith: 'first' | 'second' = 'second'): ProxyAction => ({
    type: 'duplicate',
    respondWith,
  }),
};

// ---------------------------------------------------------------------------------------------
// Matching

function matchesSpec(spec: MatchSpec, request: ProxyRequest): boolean {
  if (spec.method !== undefined) {
    const methods = typeof spec.method === 'string' ? [spec.method] : spec.method;
    if (!methods.some((m) => m.toUpperCase() === request.method)) return false;
  }
  if (spec.path !== undefined) {
    const p = spec.path;
    if (
      typeof p === 'string'
        ? p !== request.pathname
        : p instanceof RegExp
          ? !p.test(request.path)
          : !p(request.path)
    ) {
      return false;
    }
  }
  return spec.where === undefined || spec.where(request);
}

function matches(matcher: Matcher, request: ProxyRequest): boolean {
  return typeof matcher === 'function' ? matcher(request) : matchesSpec(matcher, request);
}

/** mulberry32: a small seeded PRNG. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------------------------
// Streams

interface TapOptions {
  onBytes: (n: number) => void;
  /** Byte offset at which `onLimit` runs (after the bytes before it were passed on). */
  limit?: number;
  onLimit?: (done: () => void) => void;
  corrupt?: { offset: number; xor: number };
}

/**
 * Counts bytes; at `limit` passes the bytes before it, then hands control to `onLimit` (which
 * calls `done` to let the rest through, or never does); flips a byte for `corrupt`.
 */
class Tap extends Transform {
  private seen = 0;
  private limitReached = false;
  constructor(private readonly options: TapOptions) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const start = this.seen;
    const { corrupt, limit, onLimit } = this.options;
    if (corrupt && corrupt.offset >= start && corrupt.offset < start + chunk.length) {
      chunk = Buffer.from(chunk);
      chunk[corrupt.offset - start]! ^= corrupt.xor;
    }
    if (!this.limitReached && limit !== undefined && onLimit && start + chunk.length >= limit) {
      this.limitReached = true;
      const head = chunk.subarray(0, limit - start);
      const rest = chunk.subarray(limit - start);
      this.count(head.length);
      if (head.length > 0) this.push(head);
      onLimit(() => {
        this.count(rest.length);
        callback(null, rest.length > 0 ? rest : undefined);
      });
      return;
    }
    this.count(chunk.length);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    // A limit at (or past) the end of the body still fires, e.g. a reset after the last byte.
    if (!this.limitReached && this.options.limit !== undefined && this.options.onLimit) {
      this.limitReached = true;
      this.options.onLimit(() => callback());
      return;
    }
    callback();
  }

  private count(n: number): void {
    this.seen += n;
    if (n > 0) this.options.onBytes(n);
  }
}

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  // distribution builds its URLs from these when present; the proxy must stay invisible.
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'forwarded',
]);

function copyHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
  }
  return out;
}

function encodeBody(body: Body | undefined): { bytes: Buffer; json: boolean } {
  if (body === undefined) return { bytes: Buffer.alloc(0), json: false };
  if (typeof body === 'string') return { bytes: Buffer.from(body), json: false };
  if (body instanceof Uint8Array) return { bytes: Buffer.from(body), json: false };
  return { bytes: Buffer.from(JSON.stringify(body)), json: true };
}

function resetSocket(socket: Socket | null | undefined): void {
  if (!socket || socket.destroyed) return;
  if (typeof socket.resetAndDestroy === 'function') socket.resetAndDestroy();
  else socket.destroy();
}

// ---------------------------------------------------------------------------------------------
// The proxy

interface Rule {
  matcher: Matcher;
  source: ActionSource;
  times: number | undefined;
  skip: number;
  seen: number;
  hits: number;
  removed: boolean;
}

export async function startProxy(upstream: string): Promise<TestProxy> {
  const upstreamUrl = new URL(upstream);
  const upstreamOrigin = upstreamUrl.origin;
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const rules: Rule[] = [];
  const records: ProxyRecord[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const tickets = new Map<string, { method: string; path: string; headers: OutgoingHttpHeaders }>();
  let nextId = 1;
  let proxyOrigin = '';

  const later = (ms: number, fn: () => void): void => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      fn();
    }, ms);
    timers.add(timer);
  };

  /** Upstream URLs in Location/Link headers become proxy URLs. */
  const rewriteUrlHeader = (value: string): string => value.split(upstreamOrigin).join(proxyOrigin);

  const choose = (request: ProxyRequest): { action: ProxyAction; rule: Rule | undefined } => {
    for (const rule of rules) {
      if (rule.removed || !matches(rule.matcher, request)) continue;
      if (rule.times !== undefined && rule.hits >= rule.times) continue;
      rule.seen++;
      if (rule.seen <= rule.skip) continue;
      const action = typeof rule.source === 'function' ? rule.source(request) : rule.source;
      if (action === undefined) continue;
      rule.hits++;
      return { action, rule };
    }
    return { action: { type: 'forward' }, rule: undefined };
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', upstreamOrigin);
    const request: ProxyRequest = {
      id: nextId++,
      method: (req.method ?? 'GET').toUpperCase(),
      path: url.pathname + url.search,
      pathname: url.pathname,
      query: url.searchParams,
      headers: req.headers,
    };
    const record: ProxyRecord = {
      id: request.id,
      method: request.method,
      path: request.path,
      action: 'forward',
      status: undefined,
      requestBytes: 0,
      responseBytes: 0,
      error: undefined,
      finished: false,
    };
    records.push(record);
    res.on('finish', () => (record.finished = true));
    res.on('close', () => {
      if (!res.writableFinished && record.error === undefined) record.error = 'client connection closed';
    });
    let action: ProxyAction;
    try {
      action = choose(request).action;
    } catch (error) {
      record.error = `rule failed: ${String(error)}`;
      action = actions.status(500, errorBody('UNKNOWN', `test proxy rule threw: ${String(error)}`));
    }
    apply(action, req, res, request, record);
  };

  const apply = (
    action: ProxyAction,
    req: IncomingMessage,
    res: ServerResponse,
    request: ProxyRequest,
    record: ProxyRecord,
  ): void => {
    record.action =
      action.type === 'reset' || action.type === 'stall' ? `${action.type}:${action.side}` : action.type;
    switch (action.type) {
      case 'forward':
        return forward(req, res, request, record, action, {});
      case 'respond':
        return respond(req, res, record, action.status, action.headers ?? {}, action.body);
      case 'reset':
      case 'stall':
        return forward(req, res, request, record, { type: 'forward' }, { [action.side]: action });
      case 'truncate':
      case 'corrupt':
        return forward(req, res, request, record, { type: 'forward' }, { response: action });
      case 'delay':
        return later(action.ms, () => {
          if (!res.destroyed) apply(action.then ?? { type: 'forward' }, req, res, request, record);
        });
      case 'redirect': {
        let location = action.location;
        if (location === undefined) {
          const ticket = randomUUID();
          tickets.set(ticket, {
            method: request.method,
            path: request.path,
            headers: copyHeaders(req.headers),
          });
          location = `${redirectTarget.url}/redirected/${ticket}${url(request).search}`;
        }
        return respond(req, res, record, action.status ?? 307, { location }, undefined);
      }
      case 'duplicate':
        return duplicate(req, res, request, record, action.respondWith ?? 'second');
      case 'handle':
        return action.handler(req, res, {
          request,
          upstream: upstreamOrigin,
          forward: (f) => forward(req, res, request, record, f ?? { type: 'forward' }, {}),
        });
    }
  };

  const url = (request: ProxyRequest): URL => new URL(request.path, upstreamOrigin);

  const respond = (
    req: IncomingMessage,
    res: ServerResponse,
    record: ProxyRecord,
    status: number,
    headers: Record<string, string>,
    body: Body | undefined,
  ): void => {
    req.on('data', (chunk: Buffer) => (record.requestBytes += chunk.length));
    req.resume();
    const { bytes, json } = encodeBody(body);
    record.status = status;
    res.writeHead(status, {
      ...(json ? { 'content-type': 'application/json; charset=utf-8' } : {}),
      'docker-distribution-api-version': 'registry/2.0',
      ...headers,
      'content-length': String(bytes.length),
    });
    record.responseBytes += req.method === 'HEAD' ? 0 : bytes.length;
    res.end(req.method === 'HEAD' ? undefined : bytes);
  };

  type Faults = {
    request?: Extract<ProxyAction, { type: 'reset' | 'stall' }>;
    response?: Extract<ProxyAction, { type: 'reset' | 'stall' | 'truncate' | 'corrupt' }>;
  };

  const forward = (
    req: IncomingMessage,
    res: ServerResponse,
    request: ProxyRequest,
    record: ProxyRecord,
    action: Extract<ProxyAction, { type: 'forward' }>,
    faults: Faults,
  ): void => {
    const target = url(request);
    if (action.setPath !== undefined) target.pathname = action.setPath;
    for (const [name, value] of Object.entries(action.setQuery ?? {})) {
      if (value === null) target.searchParams.delete(name);
      else target.searchParams.set(name, value);
    }
    const headers = copyHeaders(req.headers);
    for (const [name, value] of Object.entries(action.setRequestHeaders ?? {})) {
      if (value === null) delete headers[name.toLowerCase()];
      else headers[name.toLowerCase()] = value;
    }
    const upstreamReq = httpRequest(target, { method: request.method, headers, agent });
    let cut = false;
    const fail = (reason: string): void => {
      if (cut) return;
      cut = true;
      record.error ??= reason;
      upstreamReq.destroy();
      if (!res.headersSent) {
        respondUpstreamError(res, record, reason);
      } else {
        res.destroy();
      }
    };

    // Client -> upstream.
    const requestFault = faults.request;
    const requestTap = new Tap({
      onBytes: (n) => (record.requestBytes += n),
      ...(requestFault
        ? {
            limit: requestFault.afterBytes ?? 0,
            onLimit: (done: () => void) => {
              if (requestFault.type === 'reset') {
                cut = true;
                record.error = `injected reset after ${requestFault.afterBytes} request bytes`;
                upstreamReq.destroy();
                resetSocket(req.socket);
              } else if (requestFault.ms !== undefined) {
                later(requestFault.ms, done);
              } else {
                record.error = `injected stall after ${requestFault.afterBytes ?? 0} request bytes`;
              }
            },
          }
        : {}),
    });
    req.on('error', () => fail('client request stream failed'));
    req.on('aborted', () => fail('client aborted the request'));
    res.on('close', () => {
      if (!res.writableFinished) {
        cut = true;
        upstreamReq.destroy();
      }
    });
    requestTap.on('error', () => fail('request tap failed'));
    req.pipe(requestTap).pipe(upstreamReq);

    upstreamReq.on('error', (error) => {
      if (!cut) fail(`upstream: ${error.message}`);
    });

    // Upstream -> client.
    upstreamReq.on('response', (upstreamRes) => {
      if (cut) {
        upstreamRes.resume();
        return;
      }
      const rewrite = action.response;
      const status = rewrite?.status ?? upstreamRes.statusCode ?? 502;
      const outHeaders = copyHeaders(upstreamRes.headers);
      for (const name of ['location', 'link', 'content-location']) {
        const value = outHeaders[name];
        if (typeof value === 'string') outHeaders[name] = rewriteUrlHeader(value);
      }
      for (const [name, value] of Object.entries(rewrite?.headers ?? {})) {
        if (value === null) delete outHeaders[name.toLowerCase()];
        else outHeaders[name.toLowerCase()] = value;
      }
      record.status = status;

      if (rewrite?.body !== undefined) {
        upstreamRes.resume();
        const { bytes, json } = encodeBody(rewrite.body);
        if (json && rewrite.headers?.['content-type'] === undefined) {
          outHeaders['content-type'] = 'application/json; charset=utf-8';
        }
        outHeaders['content-length'] = String(bytes.length);
        res.writeHead(status, outHeaders);
        record.responseBytes += request.method === 'HEAD' ? 0 : bytes.length;
        res.end(request.method === 'HEAD' ? undefined : bytes);
        return;
      }

      res.writeHead(status, outHeaders);
      const responseFault = faults.response;
      const tapOptions: TapOptions = { onBytes: (n) => (record.responseBytes += n) };
      if (responseFault?.type === 'corrupt') {
        tapOptions.corrupt = { offset: responseFault.offset ?? 0, xor: responseFault.xor ?? 0xff };
      } else if (responseFault) {
        tapOptions.limit = responseFault.afterBytes ?? 0;
        tapOptions.onLimit = (done) => {
          if (responseFault.type === 'stall') {
            if (responseFault.ms !== undefined) later(responseFault.ms, done);
            else record.error = `injected stall after ${responseFault.afterBytes ?? 0} response bytes`;
            return;
          }
          record.error = `injected ${responseFault.type} after ${responseFault.afterBytes} response bytes`;
          cut = true;
          upstreamRes.destroy();
          // Give the bytes before the limit time to reach the client, then cut.
          later(20, () => {
            if (responseFault.type === 'reset') resetSocket(res.socket);
            else res.socket?.destroySoon();
          });
        };
        // The client gets the status and headers even when the cut comes before any body byte.
        res.flushHeaders();
      }
      const responseTap = new Tap(tapOptions);
      upstreamRes.on('error', () => fail('upstream response stream failed'));
      responseTap.on('error', () => fail('response tap failed'));
      upstreamRes.pipe(responseTap).pipe(res);
    });
  };

  /** One buffered exchange with the upstream. */
  const exchangeOnce = (
    request: ProxyRequest,
    headers: OutgoingHttpHeaders,
    body: Buffer,
  ): Promise<{ status: number; headers: OutgoingHttpHeaders; body: Buffer }> =>
    new Promise((resolve, reject) => {
      const upstreamReq = httpRequest(url(request), { method: request.method, headers, agent });
      upstreamReq.on('error', reject);
      upstreamReq.on('response', (upstreamRes) => {
        const chunks: Buffer[] = [];
        upstreamRes.on('data', (chunk: Buffer) => chunks.push(chunk));
        upstreamRes.on('error', reject);
        upstreamRes.on('end', () =>
          resolve({
            status: upstreamRes.statusCode ?? 502,
            headers: copyHeaders(upstreamRes.headers),
            body: Buffer.concat(chunks),
          }),
        );
      });
      upstreamReq.end(body);
    });

  const duplicate = (
    req: IncomingMessage,
    res: ServerResponse,
    request: ProxyRequest,
    record: ProxyRecord,
    respondWith: 'first' | 'second',
  ): void => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      record.requestBytes += chunk.length;
      if (size <= 64 * 1024 * 1024) chunks.push(chunk);
    });
    req.on('error', () => res.destroy());
    req.on('end', () => {
      if (size > 64 * 1024 * 1024) {
        respondUpstreamError(res, record, 'request body too large to duplicate');
        return;
      }
      const body = Buffer.concat(chunks);
      const headers = copyHeaders(req.headers);
      headers['content-length'] = String(body.length);
      void (async () => {
        try {
          const first = await exchangeOnce(request, headers, body);
          const second = await exchangeOnce(request, headers, body);
          const answer = respondWith === 'first' ? first : second;
          if (res.destroyed) return;
          for (const name of ['location', 'link', 'content-location']) {
            const value = answer.headers[name];
            if (typeof value === 'string') answer.headers[name] = rewriteUrlHeader(value);
          }
          record.status = answer.status;
          res.writeHead(answer.status, answer.headers);
          record.responseBytes += request.method === 'HEAD' ? 0 : answer.body.length;
          res.end(request.method === 'HEAD' ? undefined : answer.body);
        } catch (error) {
          respondUpstreamError(res, record, `duplicate: ${(error as Error).message}`);
        }
      })();
    });
  };

  const respondUpstreamError = (res: ServerResponse, record: ProxyRecord, reason: string): void => {
    if (res.destroyed) return;
    const body = JSON.stringify(errorBody('UNKNOWN', `test proxy: ${reason}`));
    record.status = 502;
    res.writeHead(502, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };

  // --- The redirect target: another origin -------------------------------------------------------

  const redirectRequests: RedirectTargetRecord[] = [];
  const redirectTarget: RedirectTarget & { url: string } = {
    url: '',
    requests: redirectRequests,
    rejectAuthorization: false,
  };
  const handleRedirected = (req: IncomingMessage, res: ServerResponse): void => {
    req.resume();
    const url = new URL(req.url ?? '/', 'http://localhost');
    redirectRequests.push({
      method: req.method ?? 'GET',
      path: url.pathname + url.search,
      headers: req.headers,
    });
    const ticket = /^\/redirected\/([^/]+)$/.exec(url.pathname)?.[1];
    const stored = ticket === undefined ? undefined : tickets.get(ticket);
    const reply = (status: number, text: string): void => {
      res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    if (stored === undefined) return reply(404, 'unknown redirect ticket');
    if (redirectTarget.rejectAuthorization && req.headers.authorization !== undefined) {
      return reply(400, 'InvalidArgument: Only one auth mechanism allowed');
    }
    const headers: OutgoingHttpHeaders = { ...stored.headers };
    if (req.headers.range !== undefined) headers.range = req.headers.range;
    const upstreamReq = httpRequest(new URL(stored.path, upstreamOrigin), {
      method: req.method === 'HEAD' ? 'HEAD' : stored.method,
      headers,
      agent,
    });
    upstreamReq.on('error', (error) => {
      if (!res.headersSent) reply(502, `redirect target: ${error.message}`);
      else res.destroy();
    });
    upstreamReq.on('response', (upstreamRes) => {
      const out = copyHeaders(upstreamRes.headers);
      res.writeHead(upstreamRes.statusCode ?? 502, out);
      upstreamRes.pipe(res);
    });
    upstreamReq.end();
  };

  // --- Servers ---------------------------------------------------------------------------------

  const listen = (server: Server, port: number, host: string): Promise<number> =>
    new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve((server.address() as AddressInfo).port);
      });
    });

  const server = createServer(handle);
  const proxyPort = await listen(server, 0, '127.0.0.1');
  proxyOrigin = `http://127.0.0.1:${proxyPort}`;

  // `localhost` may resolve to ::1 first (e.g. GitHub's runners): listen on both loopbacks.
  const redirectServers = [createServer(handleRedirected)];
  const redirectPort = await listen(redirectServers[0]!, 0, '127.0.0.1');
  const v6 = createServer(handleRedirected);
  try {
    await listen(v6, redirectPort, '::1');
    redirectServers.push(v6);
  } catch {
    // no IPv6 loopback here
  }
  redirectTarget.url = `http://localhost:${redirectPort}`;

  const filtered = (filter: CountOptions = {}): ProxyRecord[] =>
    records.filter((record) => {
      const request: ProxyRequest = {
        id: record.id,
        method: record.method,
        path: record.path,
        pathname: record.path.split('?')[0]!,
        query: new URLSearchParams(record.path.split('?')[1] ?? ''),
        headers: {},
      };
      return matchesSpec(filter, request) && (filter.status === undefined || filter.status === record.status);
    });

  const addRule = (matcher: Matcher, source: ActionSource, options: RuleOptions = {}): ProxyRule => {
    const rule: Rule = {
      matcher,
      source,
      times: options.times,
      skip: options.skip ?? 0,
      seen: 0,
      hits: 0,
      removed: false,
    };
    rules.push(rule);
    return {
      matcher,
      get hits() {
        return rule.hits;
      },
      remove: () => {
        rule.removed = true;
      },
    };
  };

  const closeServer = (s: Server): Promise<void> =>
    new Promise((resolve) => {
      s.closeAllConnections();
      s.close(() => resolve());
    });

  return {
    url: proxyOrigin,
    host: `127.0.0.1:${proxyPort}`,
    upstream: upstreamOrigin,
    records,
    redirectTarget,
    on: addRule,
    chaos(options) {
      const random = seededRandom(options.seed);
      let faults = 0;
      return addRule(options.match ?? (() => true), () => {
        const roll = random();
        const pick = random();
        if (roll >= options.probability || options.actions.length === 0) return undefined;
        if (options.limit !== undefined && faults >= options.limit) return undefined;
        faults++;
        return options.actions[Math.floor(pick * options.actions.length)];
      });
    },
    count: (filter) => filtered(filter).length,
    bytes: (filter) =>
      filtered(filter).reduce(
        (sum, r) => ({ request: sum.request + r.requestBytes, response: sum.response + r.responseBytes }),
        { request: 0, response: 0 },
      ),
    summary() {
      const out = new Map<string, { count: number; requestBytes: number; responseBytes: number }>();
      for (const r of records) {
        const pathname = r.path
          .split('?')[0]!
          .replace(/\/blobs\/uploads\/[0-9a-f-]{36}$/, '/blobs/uploads/<uuid>');
        const key = `${r.method} ${pathname}`;
        const entry = out.get(key) ?? { count: 0, requestBytes: 0, responseBytes: 0 };
        entry.count++;
        entry.requestBytes += r.requestBytes;
        entry.responseBytes += r.responseBytes;
        out.set(key, entry);
      }
      return out;
    },
    clearRules: () => void rules.splice(0),
    clearRecords: () => void records.splice(0),
    async close() {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      await Promise.all([server, ...redirectServers].map(closeServer));
      agent.destroy();
    },
  };
}
