/**
 * GHCR through GitHub's Packages API (SPEC §8): GHCR has no `/v2/_catalog` and answers manifest
 * DELETE with 405, so repositories are listed as an owner's container packages and manifests are
 * deleted as package versions whose name is the manifest digest.
 * https://docs.github.com/en/rest/packages/packages
 *
 * Two refusals of the REST API shape what deleting means on GHCR:
 * - a version of a public package with over 5,000 downloads cannot be deleted (reported, with
 *   GitHub's own message, as a GitHubPackagesError);
 * - the last tagged version of a package cannot be deleted ("You must delete the package
 *   instead"): when the manifest being deleted is the only tagged version left, the whole
 *   package goes, which is what deleting the last artifact of a staging repository means.
 *
 * A version's `created_at` is GitHub's own record of when it took the manifest in: `clean` ages
 * staged artifacts by it, as nothing a pusher writes can move it.
 */
import type { Digest } from '../oci/digest.js';
import { NotFoundError, OciError, UnsupportedError } from '../oci/errors.js';
import type { ManifestDeleter, ManifestTimer, RepositoryLister } from '../oci/remote/store.js';
import type { GitHubApi } from './api.js';

type OwnerKind = 'orgs' | 'users';

interface PackageVersion {
  id: number;
  /** For a container package: the manifest digest. */
  name: string;
  /** When GitHub took the version in (ISO 8601, UTC), e.g. `2011-04-10T20:09:31Z`. */
  created_at?: string;
  updated_at?: string;
  metadata?: { container?: { tags?: string[] } };
}

/** GitHub's REST API refused a package operation; `status` is its HTTP status. */
export class GitHubPackagesError extends OciError {
  override readonly code = 'GITHUB_PACKAGES';
  constructor(
    message: string,
    readonly status: number | undefined,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

const LAST_TAGGED_VERSION = /last tagged version/i;

function statusOf(err: unknown): number | undefined {
  const status = (err as { status?: unknown } | null)?.status;
  return typeof status === 'number' ? status : undefined;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** `cf-staging/conda-forge/linux-64/cnumpy` → owner `cf-staging`, package `conda-forge/linux-64/cnumpy`. */
export function splitPackage(repository: string): { owner: string; name: string } {
  const slash = repository.indexOf('/');
  if (slash <= 0) throw new UnsupportedError(`repository "${repository}" has no owner part`);
  return { owner: repository.slice(0, slash), name: repository.slice(slash + 1) };
}

function isTagged(version: PackageVersion): boolean {
  return (version.metadata?.container?.tags?.length ?? 0) > 0;
}

export class GhcrPackages {
  private readonly kinds = new Map<string, OwnerKind>();
  /** Per package: manifest digest → when GitHub took it in, from one listing of its versions. */
  private readonly created = new Map<string, Map<string, Date>>();

  constructor(private readonly api: GitHubApi) {}

  /** Orgs and users have different routes; find out once per owner. */
  private async kind(owner: string): Promise<OwnerKind> {
    const known = this.kinds.get(owner);
    if (known) return known;
    let kind: OwnerKind = 'orgs';
    try {
      await this.api.request('GET /orgs/{org}', { org: owner });
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
      kind = 'users';
    }
    this.kinds.set(owner, kind);
    return kind;
  }

  /** The REST path of one package (Octokit percent-encodes `{name}`, so `/` becomes %2F). */
  private async packagePath(owner: string): Promise<string> {
    return (await this.kind(owner)) === 'orgs'
      ? '/orgs/{owner}/packages/container/{name}'
      : '/users/{owner}/packages/container/{name}';
  }

  readonly listRepositories: RepositoryLister = (prefix) => this.list(prefix);

  private async *list(prefix: string): AsyncGenerator<string> {
    const { owner } = splitPackage(`${prefix}/x`);
    const kind = await this.kind(owner);
    const pages =
      kind === 'orgs'
        ? this.api.paginate.iterator('GET /orgs/{org}/packages', {
            org: owner,
            package_type: 'container',
            per_page: 100,
          })
        : this.api.paginate.iterator('GET /users/{username}/packages', {
            username: owner,
            package_type: 'container',
            per_page: 100,
          });
    for await (const page of pages) {
      for (const pkg of page.data as { name: string }[]) {
        const repository = `${owner}/${pkg.name}`;
        if (repository.startsWith(`${prefix}/`)) yield repository;
      }
    }
  }

  /** Every version of a package, or only up to the first whose name is `digest`. */
  private async versions(owner: string, name: string, until?: Digest): Promise<PackageVersion[]> {
    const path = await this.packagePath(owner);
    const found: PackageVersion[] = [];
    try {
      for await (const page of this.api.paginate.iterator(
        `GET ${path}/versions` as 'GET /orgs/{org}/packages/{package_type}/{package_name}/versions',
        { owner, name, per_page: 100 } as never,
      )) {
        found.push(...(page.data as PackageVersion[]));
        if (until && found.some((v) => v.name === until)) break;
      }
    } catch (err) {
      if (statusOf(err) === 404)
        throw new NotFoundError(`package ${name} of ${owner} does not exist on GitHub`, { cause: err });
      throw new GitHubPackagesError(
        `could not list the versions of package ${name} of ${owner}`,
        statusOf(err),
        {
          cause: err,
        },
      );
    }
    return found;
  }

  /**
   * When GHCR took the manifest in: its version's `created_at`; undefined when no version of the
   * package has that digest. One listing serves every manifest of a package; a manifest newer
   * than the listing lists again.
   */
  readonly manifestTime: ManifestTimer = async (repository: string, digest: Digest) => {
    const known = this.created.get(repository)?.get(digest);
    if (known) return known;
    const { owner, name } = splitPackage(repository);
    const times = new Map<string, Date>();
    for (const version of await this.versions(owner, name)) {
      const time = Date.parse(version.created_at ?? '');
      if (!Number.isNaN(time)) times.set(version.name, new Date(time));
    }
    this.created.set(repository, times);
    return times.get(digest);
  };

  readonly deleteManifest: ManifestDeleter = async (repository: string, digest: Digest) => {
    const { owner, name } = splitPackage(repository);
    const path = await this.packagePath(owner);
    const version = (await this.versions(owner, name, digest)).find((v) => v.name === digest);
    if (!version) throw new NotFoundError(`no version ${digest} of package ${name} owned by ${owner}`);
    try {
      await this.api.request(`DELETE ${path}/versions/{id}`, { owner, name, id: version.id });
      return;
    } catch (err) {
      if (statusOf(err) === 404)
        throw new NotFoundError(`version ${digest} of ${name} is gone`, { cause: err });
      if (!(statusOf(err) === 400 && LAST_TAGGED_VERSION.test(messageOf(err)))) {
        throw new GitHubPackagesError(
          `GitHub refused to delete version ${version.id} (${digest}) of package ${name} owned by ${owner}`,
          statusOf(err),
          { cause: err },
        );
      }
    }
    // The last tagged version: GHCR wants the package deleted instead. Only if nothing else
    // tagged has appeared since (an upload racing with us keeps the package).
    const others = (await this.versions(owner, name)).filter((v) => v.name !== digest && isTagged(v));
    try {
      if (others.length === 0) await this.api.request(`DELETE ${path}`, { owner, name });
      else await this.api.request(`DELETE ${path}/versions/{id}`, { owner, name, id: version.id });
    } catch (err) {
      throw new GitHubPackagesError(
        `GitHub refused to delete ${others.length === 0 ? `package ${name}` : `version ${version.id} (${digest}) of package ${name}`} owned by ${owner}`,
        statusOf(err),
        { cause: err },
      );
    }
  };
}

/** The providers RemoteStore needs for ghcr.io. */
export function ghcrExtras(api: GitHubApi): {
  listRepositories: RepositoryLister;
  deleteManifest: ManifestDeleter;
  manifestTime: ManifestTimer;
} {
  const packages = new GhcrPackages(api);
  return {
    listRepositories: packages.listRepositories,
    deleteManifest: packages.deleteManifest,
    manifestTime: packages.manifestTime,
  };
}
