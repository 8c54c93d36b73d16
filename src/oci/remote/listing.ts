/**
 * Listings that come in pages: the tags of a repository and the catalog, followed across `Link`
 * headers (https://github.com/opencontainers/distribution-spec/blob/main/spec.md#listing-tags),
 * refusing pages that loop, do not advance or never end.
 */
import { ProtocolError, RegistryError, UnsupportedError } from '../errors.js';
import { CATALOG_SCOPE, repositoryScope, type Scope } from './auth.js';
import type { RegistryExchange } from './exchange.js';
import { errorFromResponse, readBody, redactUrl } from './http.js';

export class Listing {
  constructor(
    private readonly registry: RegistryExchange,
    /** Most entries one listing may have (see RegistryClientOptions.listLimit). */
    private readonly listLimit: number,
  ) {}

  /** Every tag of a repository across `Link` pages; a repository that does not exist has none. */
  async *listTags(repository: string, pageSize = 1000): AsyncGenerator<string> {
    const first = this.registry.url(`/v2/${repository}/tags/list`);
    first.searchParams.set('n', String(pageSize));
    yield* this.paginate(first, [repositoryScope(repository, 'pull')], 'tags', `tags of ${repository}`);
  }

  /** Every repository from `/v2/_catalog`; UnsupportedError where there is no catalog (GHCR). */
  async *catalog(pageSize = 1000): AsyncGenerator<string> {
    const first = this.registry.url('/v2/_catalog');
    first.searchParams.set('n', String(pageSize));
    try {
      yield* this.paginate(first, [CATALOG_SCOPE], 'repositories', 'catalog');
    } catch (err) {
      if (err instanceof RegistryError && [401, 403, 404, 405].includes(err.status)) {
        // GHCR has no catalog at all; elsewhere it may need `registry:catalog:*` access.
        const why =
          err.status === 404 || err.status === 405
            ? 'offers no /v2/_catalog'
            : `refused /v2/_catalog (${err.status}; listing repositories needs registry:catalog:* access)`;
        throw new UnsupportedError(`${this.registry.host} ${why}`, { cause: err });
      }
      throw err;
    }
  }

  private async *paginate(
    first: URL,
    scopes: Scope[],
    field: 'tags' | 'repositories',
    what: string,
  ): AsyncGenerator<string> {
    const { registry } = this;
    const seenPages = new Set<string>();
    const seenItems = new Set<string>();
    let next: URL | undefined = first;
    while (next) {
      const url: URL = next;
      if (seenPages.has(url.href))
        throw new ProtocolError(`the ${what} pagination loops back to ${redactUrl(url)}${url.search}`);
      seenPages.add(url.href);
      // The body is read inside the retry: an answer that breaks off is asked for again.
      const page = await registry.http.withRetry(`GET ${redactUrl(url)}`, async () => {
        const response = await registry.exchange({
          method: 'GET',
          url,
          headers: { accept: 'application/json' },
          scopes,
          expect: [200, 404],
        });
        if (response.status === 404) return { response, body: undefined };
        return { response, body: await readBody(response.body, 16 * 1024 * 1024, `${what} page`) };
      });
      const { response, body } = page;
      if (body === undefined) {
        const error = await errorFromResponse('GET', url, response);
        if (field === 'tags' && (error.has('NAME_UNKNOWN') || error.errors.length === 0)) return;
        throw error;
      }
      let items: unknown;
      try {
        items = (JSON.parse(body.toString('utf8')) as Record<string, unknown>)[field];
      } catch (cause) {
        throw new ProtocolError(`the ${what} page ${redactUrl(url)} is not JSON`, { cause });
      }
      if (items !== null && items !== undefined && !Array.isArray(items))
        throw new ProtocolError(`the ${what} page has no ${field} list`);
      let fresh = 0;
      for (const item of (items as unknown[] | null) ?? []) {
        if (typeof item !== 'string') throw new ProtocolError(`the ${what} page lists a non-string`);
        if (seenItems.has(item)) continue;
        if (seenItems.size >= this.listLimit)
          throw new ProtocolError(
            `the ${what} listing has more than ${this.listLimit} entries (pages without end?) at ${redactUrl(url)}${url.search}`,
          );
        seenItems.add(item);
        fresh++;
        yield item;
      }
      next = nextLink(response.headers.link, url);
      if (next && fresh === 0)
        throw new ProtocolError(`the ${what} pagination does not advance at ${redactUrl(url)}${url.search}`);
    }
  }
}

/** The `rel="next"` target of a Link header, resolved against the request URL. */
export function nextLink(header: string | undefined, base: URL): URL | undefined {
  if (!header) return undefined;
  for (const part of header.split(/,(?=\s*<)/)) {
    const m = /^\s*<([^>]*)>\s*;(.*)$/.exec(part);
    if (m && /\brel\s*=\s*"?next"?/i.test(m[2]!)) {
      const url = new URL(m[1]!, base);
      if (url.origin !== base.origin)
        throw new ProtocolError(`a Link header points to another origin (${url.origin})`);
      return url;
    }
  }
  return undefined;
}
