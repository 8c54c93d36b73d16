/**
 * A loopback stand-in for the few GitHub REST endpoints conda-oci uses, following GitHub's
 * documentation (https://docs.github.com/en/rest):
 *
 * - Packages (https://docs.github.com/en/rest/packages/packages): `GET /orgs/{org}`,
 *   `GET /users/{username}`, `GET /{orgs|users}/{owner}/packages?package_type=container`,
 *   `GET|DELETE …/packages/container/{url-encoded name}`, `GET …/versions`,
 *   `GET|DELETE …/versions/{id}`. Lists are paginated (`page`, `per_page` up to 100, default 30)
 *   with `Link` headers.
 * - `POST /repos/{owner}/{repo}/dispatches` (https://docs.github.com/en/rest/repos/repos#create-a-repository-dispatch-event):
 *   recorded; refused with 422 when `client_payload` has more than 10 top-level keys or is 64 KB
 *   or more, or `event_type` is over 100 characters, as GitHub does.
 * - Issues (https://docs.github.com/en/rest/issues): `GET|POST /repos/{owner}/{repo}/issues`,
 *   `GET /repos/{owner}/{repo}/issues/{n}`, `GET|POST …/issues/{n}/comments`.
 *
 * Packages are not stored here: they are derived on every request from the real registry
 * behind GHCR's stand-in, as GHCR's packages are its repositories. A repository `<owner>/<name>`
 * is the container package `<name>` of `<owner>`; its versions are every manifest in the
 * repository, tagged or not (GHCR lists untagged manifests too), named by digest, with the tags
 * pointing at them. The catalog and tags come from the registry API; untagged manifests, which
 * the registry API cannot list, from distribution's storage directory. A version's `created_at`
 * is when the registry first stored the manifest (its revision link's modification time, kept
 * while the version lives: pushing the same manifest again does not move it), `updated_at` the
 * latest write of it or of a tag on it; both as GitHub writes timestamps, ISO 8601 in UTC to the
 * second (`2011-04-10T20:09:31Z`; https://docs.github.com/en/rest/using-the-rest-api/timezones-and-the-rest-api).
 * Deleting a version
 * really deletes the manifest from the registry (GHCR's registry API cannot), and is refused as
 * GitHub refuses it: 400 for a version of a public package with over 5,000 downloads, and 400
 * for the last tagged version of a package ("delete the package instead").
 *
 * Every request needs `Authorization: token <t>` (or `Bearer <t>`) with the configured token,
 * and is recorded.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

export interface GitHubStandInOptions {
  /** The registry that GHCR's packages are derived from (no auth, or basic credentials). */
  registry?: {
    url: string;
    /** distribution's filesystem root, for manifests no tag points at. */
    storageDir: string;
    credentials?: { username: string; password: string };
  };
  /** The token every request must carry. */
  token: string;
  /** Owners that are user accounts; every other owner is an organization. */
  users?: string[];
  /** `owner/repo` that exist for dispatches and issues. Default: every repository exists. */
  repositories?: string[];
}

export interface RecordedRequest {
  method: string;
  /** Path and query as sent. */
  path: string;
  pathname: string;
  query: URLSearchParams;
  authorization: string | undefined;
  body: unknown;
  status: number;
}

export interface RecordedDispatch {
  repository: string;
  event_type: string;
  client_payload: Record<string, unknown>;
}

export interface StandInIssue {
  number: number;
  title: string;
  body: string;
  state: 'open' | 'closed';
  labels: string[];
  comments: string[];
  html_url: string;
}

export interface StandInVersion {
  id: number;
  /** The manifest digest. */
  name: string;
  tags: string[];
  created: Date;
  updated: Date;
}

export interface GitHubStandIn {
  /** `http://127.0.0.1:<port>`: GITHUB_API_URL. */
  readonly url: string;
  readonly token: string;
  readonly requests: RecordedRequest[];
  readonly dispatches: RecordedDispatch[];
  issues(repository: string): StandInIssue[];
  /** Makes the package of `repository` public and gives the version `digest` this many downloads. */
  setDownloads(repository: string, digest: string, count: number): void;
  /** The versions GitHub would list for the container package behind `repository` (`owner/name`). */
  versions(repository: string): Promise<StandInVersion[]>;
  /** Called as each request arrives, before it is answered. */
  onRequest(listener: (request: RecordedRequest) => void): void;
  /** Requests matching a method and a pathname pattern. */
  count(method: string, pathname: RegExp): number;
  close(): Promise<void>;
}

/** GitHub's answers to the refusals this stand-in reproduces. */
export const MESSAGES = {
  downloads:
    'Publicly visible package versions with more than 5000 downloads cannot be deleted. Contact GitHub support for further assistance.',
  packageDownloads:
    'You cannot delete a public package if any version of the package has more than 5,000 downloads. Contact GitHub support for further assistance.',
  lastTagged: 'You cannot delete the last tagged version of a package. You must delete the package instead.',
} as const;

const DOCS = 'https://docs.github.com/rest';
const MAX_DISPATCH_KEYS = 10;
const MAX_DISPATCH_BYTES = 64 * 1024;

/** A timestamp as GitHub's REST API writes it: `2011-04-10T20:09:31Z`. */
function gitHubTime(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export async function startGitHubStandIn(options: GitHubStandInOptions): Promise<GitHubStandIn> {
  const requests: RecordedRequest[] = [];
  const dispatches: RecordedDispatch[] = [];
  const issuesByRepo = new Map<string, StandInIssue[]>();
  const versionIds = new Map<string, number>();
  /** `repository@digest` → when the registry first stored it, while the version lives. */
  const firstStored = new Map<string, Date>();
  const packageIds = new Map<string, number>();
  const downloads = new Map<string, number>();
  const publicPackages = new Set<string>();
  const users = new Set(options.users ?? []);
  const listeners: ((request: RecordedRequest) => void)[] = [];
  let nextId = 4_000_001;
  let nextIssue = 1;
  let base = '';

  // -------------------------------------------------------------------------------------------
  // The registry behind it

  const registryHeaders = (): Record<string, string> => {
    const c = options.registry?.credentials;
    return c
      ? { authorization: `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}` }
      : {};
  };

  const registry = () => {
    if (!options.registry) throw new HttpError(404, 'Not Found');
    return options.registry;
  };

  /** Follows `Link: <…>; rel="next"` of a registry list. */
  async function registryList(path: string, field: string): Promise<string[]> {
    const out: string[] = [];
    let next: string | undefined = `${registry().url}${path}`;
    while (next) {
      const response = await fetch(next, { headers: registryHeaders() });
      if (response.status === 404) return out;
      if (!response.ok) throw new Error(`registry answered ${response.status} to GET ${next}`);
      out.push(...(((await response.json()) as Record<string, string[] | null>)[field] ?? []));
      const link = /<([^>]+)>;\s*rel="next"/.exec(response.headers.get('link') ?? '');
      next = link ? new URL(link[1]!, registry().url).toString() : undefined;
    }
    return out;
  }

  async function tagDigest(repository: string, tag: string): Promise<string | undefined> {
    const response = await fetch(`${registry().url}/v2/${repository}/manifests/${tag}`, {
      method: 'HEAD',
      headers: {
        ...registryHeaders(),
        accept: [
          'application/vnd.oci.image.manifest.v1+json',
          'application/vnd.oci.image.index.v1+json',
          'application/vnd.docker.distribution.manifest.v2+json',
          'application/vnd.docker.distribution.manifest.list.v2+json',
        ].join(', '),
      },
    });
    return response.ok ? (response.headers.get('docker-content-digest') ?? undefined) : undefined;
  }

  /** Every manifest of a repository, newest first, with its tags. */
  async function versionsOf(repository: string): Promise<StandInVersion[]> {
    const revisions = join(
      registry().storageDir,
      'docker/registry/v2/repositories',
      repository,
      '_manifests/revisions/sha256',
    );
    const found = new Map<string, StandInVersion>();
    let hexes: string[];
    try {
      hexes = await readdir(revisions);
    } catch {
      return [];
    }
    for (const hex of hexes) {
      try {
        const info = await stat(join(revisions, hex, 'link'));
        const digest = `sha256:${hex}`;
        const key = `${repository}@${digest}`;
        if (!versionIds.has(key)) versionIds.set(key, nextId++);
        if (!firstStored.has(key)) firstStored.set(key, info.mtime);
        found.set(digest, {
          id: versionIds.get(key)!,
          name: digest,
          tags: [],
          created: firstStored.get(key)!,
          updated: info.mtime,
        });
      } catch {
        // deleted: distribution removes the link
      }
    }
    const tagLinks = join(
      registry().storageDir,
      'docker/registry/v2/repositories',
      repository,
      '_manifests/tags',
    );
    for (const tag of await registryList(`/v2/${repository}/tags/list?n=1000`, 'tags')) {
      const digest = await tagDigest(repository, tag);
      const version = digest ? found.get(digest) : undefined;
      if (!version) continue;
      version.tags.push(tag);
      const tagged = await stat(join(tagLinks, tag, 'current', 'link')).catch(() => undefined);
      if (tagged && tagged.mtime > version.updated) version.updated = tagged.mtime;
    }
    return [...found.values()].sort((a, b) => b.created.getTime() - a.created.getTime() || b.id - a.id);
  }

  async function deleteFromRegistry(repository: string, digest: string): Promise<void> {
    firstStored.delete(`${repository}@${digest}`);
    const response = await fetch(`${registry().url}/v2/${repository}/manifests/${digest}`, {
      method: 'DELETE',
      headers: registryHeaders(),
    });
    if (response.status !== 202 && response.status !== 404)
      throw new Error(`registry answered ${response.status} to DELETE ${repository}@${digest}`);
  }

  // -------------------------------------------------------------------------------------------
  // Resources

  const ownerKind = (owner: string): 'orgs' | 'users' => (users.has(owner) ? 'users' : 'orgs');

  function ownerObject(owner: string) {
    return {
      login: owner,
      id: 1000 + owner.length,
      type: ownerKind(owner) === 'users' ? 'User' : 'Organization',
      url: `${base}/${ownerKind(owner)}/${owner}`,
    };
  }

  function versionObject(owner: string, name: string, v: StandInVersion) {
    const kind = ownerKind(owner);
    return {
      id: v.id,
      name: v.name,
      url: `${base}/${kind}/${owner}/packages/container/${encodeURIComponent(name)}/versions/${v.id}`,
      package_html_url: `https://github.com/${kind === 'orgs' ? 'orgs/' : ''}${owner}/packages/container/package/${encodeURIComponent(name)}`,
      created_at: gitHubTime(v.created),
      updated_at: gitHubTime(v.updated),
      html_url: `https://github.com/${owner}/packages/container/${encodeURIComponent(name)}/${v.id}`,
      metadata: { package_type: 'container', container: { tags: v.tags } },
    };
  }

  async function packageObject(owner: string, name: string) {
    const repository = `${owner}/${name}`;
    const versions = await versionsOf(repository);
    if (versions.length === 0) return undefined;
    if (!packageIds.has(repository)) packageIds.set(repository, nextId++);
    const created = gitHubTime(versions[versions.length - 1]!.created);
    return {
      id: packageIds.get(repository)!,
      name,
      package_type: 'container',
      owner: ownerObject(owner),
      version_count: versions.length,
      visibility: publicPackages.has(repository) ? 'public' : 'private',
      url: `${base}/${ownerKind(owner)}/${owner}/packages/container/${encodeURIComponent(name)}`,
      created_at: created,
      updated_at: gitHubTime(new Date(Math.max(...versions.map((v) => v.updated.getTime())))),
      html_url: `https://github.com/${owner}/packages/container/package/${encodeURIComponent(name)}`,
    };
  }

  async function packagesOf(owner: string) {
    const names = (await registryList('/v2/_catalog?n=1000', 'repositories'))
      .filter((r) => r.startsWith(`${owner}/`))
      .map((r) => r.slice(owner.length + 1))
      .sort();
    const out = [];
    for (const name of names) {
      const pkg = await packageObject(owner, name);
      if (pkg) out.push(pkg);
    }
    return out;
  }

  function issueObject(repository: string, issue: StandInIssue) {
    return {
      id: 9_000_000 + issue.number,
      number: issue.number,
      title: issue.title,
      body: issue.body,
      state: issue.state,
      labels: issue.labels.map((name) => ({ name })),
      comments: issue.comments.length,
      html_url: issue.html_url,
      url: `${base}/repos/${repository}/issues/${issue.number}`,
    };
  }

  // -------------------------------------------------------------------------------------------
  // Pagination: `page` and `per_page` (default 30, at most 100), `Link` with next/last/first/prev.

  function paginate<T>(url: URL, items: T[]): Reply {
    const perPage = Math.min(100, Math.max(1, Number(url.searchParams.get('per_page') ?? 30) || 30));
    const page = Math.max(1, Number(url.searchParams.get('page') ?? 1) || 1);
    const last = Math.max(1, Math.ceil(items.length / perPage));
    const link = (p: number) => {
      const target = new URL(`${base}${url.pathname}${url.search}`);
      target.searchParams.set('page', String(p));
      return target.toString();
    };
    const rels: string[] = [];
    if (page < last) rels.push(`<${link(page + 1)}>; rel="next"`, `<${link(last)}>; rel="last"`);
    if (page > 1) rels.push(`<${link(1)}>; rel="first"`, `<${link(page - 1)}>; rel="prev"`);
    return {
      status: 200,
      body: items.slice((page - 1) * perPage, page * perPage),
      ...(rels.length ? { headers: { link: rels.join(', ') } } : {}),
    };
  }

  // -------------------------------------------------------------------------------------------
  // Routes

  function repositoryExists(repository: string): void {
    if (options.repositories && !options.repositories.includes(repository))
      throw new HttpError(404, 'Not Found');
  }

  async function route(method: string, url: URL, body: unknown): Promise<Reply> {
    const parts = url.pathname.split('/').slice(1).map(decodeURIComponent);

    // GET /orgs/{org}, GET /users/{username}
    if (parts.length === 2 && method === 'GET' && (parts[0] === 'orgs' || parts[0] === 'users')) {
      if (ownerKind(parts[1]!) !== parts[0]) throw new HttpError(404, 'Not Found');
      return { status: 200, body: ownerObject(parts[1]!) };
    }

    // /{orgs|users}/{owner}/packages…
    if ((parts[0] === 'orgs' || parts[0] === 'users') && parts[2] === 'packages') {
      const owner = parts[1]!;
      if (ownerKind(owner) !== parts[0]) throw new HttpError(404, 'Not Found');
      if (parts.length === 3 && method === 'GET') {
        const type = url.searchParams.get('package_type');
        if (!type) throw new HttpError(422, 'Invalid request.\n\n"package_type" wasn\'t supplied.');
        return paginate(url, type === 'container' ? await packagesOf(owner) : []);
      }
      if (parts[3] !== 'container' || parts.length < 5) throw new HttpError(404, 'Not Found');
      const name = parts[4]!;
      const repository = `${owner}/${name}`;
      const versions = await versionsOf(repository);
      if (versions.length === 0) throw new HttpError(404, 'Package not found.');

      if (parts.length === 5 && method === 'GET')
        return { status: 200, body: await packageObject(owner, name) };
      if (parts.length === 5 && method === 'DELETE') {
        if (
          publicPackages.has(repository) &&
          versions.some((v) => (downloads.get(`${repository}@${v.name}`) ?? 0) > 5000)
        )
          throw new HttpError(400, MESSAGES.packageDownloads);
        for (const v of versions) await deleteFromRegistry(repository, v.name);
        return { status: 204 };
      }
      if (parts[5] !== 'versions') throw new HttpError(404, 'Not Found');
      if (parts.length === 6 && method === 'GET') {
        const state = url.searchParams.get('state') ?? 'active';
        return paginate(url, state === 'active' ? versions.map((v) => versionObject(owner, name, v)) : []);
      }
      if (parts.length === 7) {
        const version = versions.find((v) => String(v.id) === parts[6]);
        if (!version) throw new HttpError(404, 'Package version not found.');
        if (method === 'GET') return { status: 200, body: versionObject(owner, name, version) };
        if (method === 'DELETE') {
          if (publicPackages.has(repository) && (downloads.get(`${repository}@${version.name}`) ?? 0) > 5000)
            throw new HttpError(400, MESSAGES.downloads);
          if (version.tags.length > 0 && !versions.some((v) => v !== version && v.tags.length > 0))
            throw new HttpError(400, MESSAGES.lastTagged);
          await deleteFromRegistry(repository, version.name);
          return { status: 204 };
        }
      }
      throw new HttpError(404, 'Not Found');
    }

    // /repos/{owner}/{repo}/…
    if (parts[0] === 'repos' && parts.length >= 4) {
      const repository = `${parts[1]}/${parts[2]}`;
      repositoryExists(repository);
      if (parts[3] === 'dispatches' && parts.length === 4 && method === 'POST') {
        const { event_type, client_payload } = (body ?? {}) as Record<string, unknown>;
        if (typeof event_type !== 'string' || event_type.length === 0 || event_type.length > 100)
          throw new HttpError(422, 'Invalid request.\n\n"event_type" must be 1 to 100 characters.');
        const payload = client_payload ?? {};
        if (typeof payload !== 'object' || Array.isArray(payload) || payload === null)
          throw new HttpError(
            422,
            "Invalid request.\n\nFor 'properties/client_payload', it is not an object.",
          );
        const keys = Object.keys(payload).length;
        if (keys > MAX_DISPATCH_KEYS)
          throw new HttpError(
            422,
            `Invalid request.\n\nNo more than ${MAX_DISPATCH_KEYS} properties are allowed; ${keys} were supplied.`,
          );
        if (Buffer.byteLength(JSON.stringify(payload)) >= MAX_DISPATCH_BYTES)
          throw new HttpError(422, 'Invalid request.\n\nclient_payload must be less than 64KB.');
        dispatches.push({ repository, event_type, client_payload: payload as Record<string, unknown> });
        return { status: 204 };
      }
      if (parts[3] === 'issues') {
        const list = issuesByRepo.get(repository) ?? [];
        issuesByRepo.set(repository, list);
        if (parts.length === 4 && method === 'GET') {
          const state = url.searchParams.get('state') ?? 'open';
          const labels = (url.searchParams.get('labels') ?? '').split(',').filter(Boolean);
          const selected = list
            .filter((i) => state === 'all' || i.state === state)
            .filter((i) => labels.every((l) => i.labels.includes(l)))
            .sort((a, b) => b.number - a.number);
          return paginate(
            url,
            selected.map((i) => issueObject(repository, i)),
          );
        }
        if (parts.length === 4 && method === 'POST') {
          const { title, body: text, labels } = (body ?? {}) as Record<string, unknown>;
          if (typeof title !== 'string' || title === '')
            throw new HttpError(422, 'Invalid request.\n\n"title" wasn\'t supplied.');
          if (typeof text === 'string' && text.length > 65_536)
            throw new HttpError(422, 'Validation Failed: body is too long (maximum is 65536 characters)');
          const issue: StandInIssue = {
            number: nextIssue++,
            title,
            body: typeof text === 'string' ? text : '',
            state: 'open',
            labels: Array.isArray(labels) ? labels.map(String) : [],
            comments: [],
            html_url: `https://github.com/${repository}/issues/${nextIssue - 1}`,
          };
          list.push(issue);
          return { status: 201, body: issueObject(repository, issue) };
        }
        const issue = list.find((i) => String(i.number) === parts[4]);
        if (!issue) throw new HttpError(404, 'Not Found');
        if (parts.length === 5 && method === 'GET')
          return { status: 200, body: issueObject(repository, issue) };
        if (parts.length === 6 && parts[5] === 'comments') {
          if (method === 'GET')
            return paginate(
              url,
              issue.comments.map((c, i) => ({ id: i + 1, body: c })),
            );
          if (method === 'POST') {
            const text = ((body ?? {}) as Record<string, unknown>).body;
            if (typeof text !== 'string' || text === '')
              throw new HttpError(422, 'Invalid request.\n\n"body" wasn\'t supplied.');
            if (text.length > 65_536)
              throw new HttpError(422, 'Validation Failed: body is too long (maximum is 65536 characters)');
            issue.comments.push(text);
            return {
              status: 201,
              body: {
                id: issue.comments.length,
                body: text,
                html_url: `${issue.html_url}#issuecomment-${issue.comments.length}`,
              },
            };
          }
        }
      }
    }
    throw new HttpError(404, 'Not Found');
  }

  // -------------------------------------------------------------------------------------------
  // Server

  const send = (res: ServerResponse, reply: Reply): void => {
    const payload = reply.body === undefined ? undefined : Buffer.from(JSON.stringify(reply.body));
    res.writeHead(reply.status, {
      ...(payload
        ? { 'content-type': 'application/json; charset=utf-8', 'content-length': payload.length }
        : {}),
      'x-github-api-version-selected': '2022-11-28',
      ...reply.headers,
    });
    res.end(payload);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', base);
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    const record: RecordedRequest = {
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      pathname: url.pathname,
      query: url.searchParams,
      authorization: req.headers.authorization,
      body: undefined,
      status: 0,
    };
    requests.push(record);
    for (const listener of listeners) listener(record);
    let reply: Reply;
    try {
      if (raw !== '') {
        try {
          record.body = JSON.parse(raw);
        } catch {
          throw new HttpError(400, 'Problems parsing JSON');
        }
      }
      const auth = req.headers.authorization;
      if (!auth) throw new HttpError(401, 'Requires authentication');
      const match = /^(?:token|bearer)\s+(.+)$/i.exec(auth);
      if (!match || match[1] !== options.token) throw new HttpError(401, 'Bad credentials');
      reply = await route(record.method, url, record.body);
    } catch (err) {
      reply =
        err instanceof HttpError
          ? {
              status: err.status,
              body: { message: err.message, documentation_url: DOCS, status: String(err.status) },
            }
          : { status: 500, body: { message: `stand-in failed: ${String(err)}` } };
    }
    record.status = reply.status;
    send(res, reply);
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) send(res, { status: 500, body: { message: String(err) } });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url: base,
    token: options.token,
    requests,
    dispatches,
    issues: (repository) => issuesByRepo.get(repository) ?? [],
    setDownloads(repository, digest, count) {
      publicPackages.add(repository);
      downloads.set(`${repository}@${digest}`, count);
    },
    versions: (repository) => versionsOf(repository),
    onRequest: (listener) => void listeners.push(listener),
    count: (method, pathname) =>
      requests.filter((r) => r.method === method && pathname.test(r.pathname)).length,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
