/**
 * The referrers API (https://github.com/opencontainers/distribution-spec/blob/main/spec.md#listing-referrers),
 * and what its absence looks like: 404 on distribution 2.x and GHCR, after which it is not asked
 * again.
 */
import type { Digest } from '../digest.js';
import { MANIFEST_SIZE_LIMIT, parseImageIndex, type ImageIndex } from '../manifest.js';
import { MEDIA_TYPE_OCI_INDEX } from '../media-types.js';
import { repositoryScope } from './auth.js';
import { mediaTypeOf, type RegistryExchange } from './exchange.js';
import { discard, readBody, redactUrl } from './http.js';

export class ReferrersClient {
  private referrersMissing = false;

  constructor(private readonly registry: RegistryExchange) {}

  /** The referrers API; undefined where the registry has none (GHCR, distribution 2.x: 404). */
  async referrers(repository: string, subject: Digest): Promise<ImageIndex | undefined> {
    // A registry with the API never answers 404 to it, so one 404 settles it for the session.
    if (this.referrersMissing) return undefined;
    const { registry } = this;
    const url = registry.url(`/v2/${repository}/referrers/${subject}`);
    const answer = await registry.http.withRetry(`GET ${redactUrl(url)}`, async () => {
      const response = await registry.exchange({
        method: 'GET',
        url,
        headers: { accept: MEDIA_TYPE_OCI_INDEX },
        scopes: [repositoryScope(repository, 'pull')],
        expect: [200, 400, 404, 405],
      });
      if (response.status !== 200) {
        await discard(response.body);
        return { status: response.status, type: undefined, body: undefined };
      }
      const type = mediaTypeOf(response);
      const body = await readBody(response.body, MANIFEST_SIZE_LIMIT, `referrers of ${subject}`);
      return { status: response.status, type, body };
    });
    if (answer.body === undefined) {
      if (answer.status === 404) this.referrersMissing = true;
      return undefined;
    }
    if (answer.type !== MEDIA_TYPE_OCI_INDEX) return undefined; // not a referrers answer (e.g. an HTML 200)
    return parseImageIndex(answer.body, `referrers of ${repository}@${subject}`);
  }
}
