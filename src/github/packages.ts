/**
 * GHCR through GitHub's Packages API (SPEC §8): GHCR has no `/v2/_catalog` and answers manifest
 * DELETE with 405, so repositories are listed as an owner's container packages and manifests are
 * deleted as package versions whose name is the manifest digest.
 * https://docs.github.com/en/rest/packages/packages
 */
import type { Digest } from '../oci/digest.js';
import { NotFoundError, UnsupportedError } from '../oci/errors.js';
import type { ManifestDeleter, RepositoryLister } from '../oci/remote/store.js';
import type { GitHubApi } from './api.js';

type OwnerKind = 'orgs' | 'users';

interface PackageVersion {
  id: number;
  name: string;
}

/** `cf-staging/conda-forge/linux-64/cnumpy` → owner `cf-staging`, package `conda-forge/linux-64/cnumpy`. */
export function splitPackage(repository: string): { owner: string; name: string } {
  const slash = repository.indexOf('/');
  if (slash <= 0) throw new UnsupportedError(`repository "${repository}" has no owner part`);
  return { owner: repository.slice(0, slash), name: repository.slice(slash + 1) };
}

export class GhcrPackages {
  private readonly kinds = new Map<string, OwnerKind>();

  constructor(private readonly api: GitHubApi) {}

  /** Orgs and users have different routes; find out once per owner. */
  private async kind(owner: string): Promise<OwnerKind> {
    const known = this.kinds.get(owner);
    if (known) return known;
    let kind: OwnerKind = 'orgs';
    try {
      await this.api.request('GET /orgs/{org}', { org: owner });
    } catch (err) {
      if ((err as { status?: number }).status !== 404) throw err;
      kind = 'users';
    }
    this.kinds.set(owner, kind);
    return kind;
  }

  readonly listRepositories: RepositoryLister = (prefix) => this.list(prefix);

  private async *list(prefix: string): AsyncGenerator<string> {
    const { owner } = splitPackage(`${prefix}/x`);
    const kind = await this.kind(owner);
    const route = kind === 'orgs' ? 'GET /orgs/{owner}/packages' : 'GET /users/{owner}/packages';
    for await (const page of this.api.paginate.iterator(
      route as 'GET /orgs/{org}/packages',
      { owner, org: owner, package_type: 'container', per_page: 100 } as never,
    )) {
      for (const pkg of page.data as { name: string }[]) {
        const repository = `${owner}/${pkg.name}`;
        if (repository.startsWith(`${prefix}/`)) yield repository;
      }
    }
  }

  readonly deleteManifest: ManifestDeleter = async (repository: string, digest: Digest) => {
    const { owner, name } = splitPackage(repository);
    const kind = await this.kind(owner);
    const base =
      kind === 'orgs'
        ? '/orgs/{owner}/packages/container/{name}/versions'
        : '/users/{owner}/packages/container/{name}/versions';
    // Octokit percent-encodes path parameters, so `/` in the package name becomes %2F.
    const params = { owner, name };
    let version: PackageVersion | undefined;
    for await (const page of this.api.paginate.iterator(
      `GET ${base}` as 'GET /orgs/{org}/packages/{package_type}/{package_name}/versions',
      { ...params, per_page: 100 } as never,
    )) {
      version = (page.data as PackageVersion[]).find((v) => v.name === digest);
      if (version) break;
    }
    if (!version) throw new NotFoundError(`no version ${digest} of package ${name} owned by ${owner}`);
    await this.api.request(`DELETE ${base}/{id}`, { ...params, id: version.id });
  };
}

/** The providers RemoteStore needs for ghcr.io. */
export function ghcrExtras(api: GitHubApi): {
  listRepositories: RepositoryLister;
  deleteManifest: ManifestDeleter;
} {
  const packages = new GhcrPackages(api);
  return { listRepositories: packages.listRepositories, deleteManifest: packages.deleteManifest };
}
