/**
 * A loopback stand-in for GitHub Actions' OIDC token endpoint (the ACTIONS_ID_TOKEN_REQUEST_URL
 * protocol: `GET <url>&audience=<aud>` with `Authorization: Bearer <request token>` answers
 * `{"count": 1, "value": "<JWT>"}`), issuing GitHub-shaped tokens signed RS256 (JWS compact form,
 * RFC 7515, over Node's crypto) by a key of its own. The claims follow GitHub's documentation
 * ("About security hardening with OpenID Connect", example subject claims); Fulcio turns them into
 * certificate extensions.
 *
 * Each workflow run is registered with `run()`, which returns the request URL and request token
 * that job would see. Every request token and every issued JWT is registered with the suite-wide
 * secret scan.
 */
import { generateKeyPairSync, randomUUID, sign, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { registerTestSecret, testSecret } from './secrets.js';

export const GITHUB_ISSUER = 'https://token.actions.githubusercontent.com';

export interface WorkflowRun {
  /** `owner/name`, e.g. `conda-forge/numpy-feedstock`. */
  repository: string;
  ref?: string;
  sha?: string;
  /** The workflow file in the repository. */
  workflowPath?: string;
  /** A reusable workflow the job runs, `owner/repo/path@ref`; default the workflow itself. */
  jobWorkflowRef?: string;
  runId?: string;
  runAttempt?: string;
  visibility?: 'public' | 'private' | 'internal';
  eventName?: string;
  /** Default GitHub's issuer; another one stands for a token from some other OIDC provider. */
  issuer?: string;
}

export interface IssuedRun {
  requestUrl: string;
  requestToken: string;
  /** The claims every token of this run carries (plus aud, iat, nbf, exp, jti). */
  claims: Record<string, string>;
}

export interface GitHubOidcStandIn {
  readonly url: string;
  /** The verification key of every token issued here, by issuer (one key for all). */
  readonly publicKey: KeyObject;
  run(run: WorkflowRun): IssuedRun;
  /** Every JWT issued so far. */
  readonly issued: string[];
  close(): Promise<void>;
}

function base64url(data: string | Buffer): string {
  return Buffer.from(data).toString('base64url');
}

function githubClaims(run: WorkflowRun): Record<string, string> {
  const ref = run.ref ?? 'refs/heads/main';
  const sha = run.sha ?? '0123456789abcdef0123456789abcdef01234567';
  const workflowPath = run.workflowPath ?? '.github/workflows/conda-build.yml';
  const workflowRef = `${run.repository}/${workflowPath}@${ref}`;
  const [owner = ''] = run.repository.split('/');
  return {
    iss: run.issuer ?? GITHUB_ISSUER,
    sub: `repo:${run.repository}:ref:${ref}`,
    ref,
    ref_type: ref.startsWith('refs/tags/') ? 'tag' : 'branch',
    ref_protected: 'false',
    sha,
    repository: run.repository,
    repository_id: '123456789',
    repository_owner: owner,
    repository_owner_id: '987654',
    repository_visibility: run.visibility ?? 'public',
    actor: 'regro-cf-autotick-bot',
    actor_id: '36490558',
    workflow: 'Build conda package',
    workflow_ref: workflowRef,
    workflow_sha: sha,
    job_workflow_ref: run.jobWorkflowRef ?? workflowRef,
    job_workflow_sha: sha,
    event_name: run.eventName ?? 'push',
    run_id: run.runId ?? '4242424242',
    run_number: '17',
    run_attempt: run.runAttempt ?? '1',
    runner_environment: 'github-hosted',
    head_ref: '',
    base_ref: '',
  };
}

export async function startGitHubOidc(): Promise<GitHubOidcStandIn> {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const runs = new Map<string, IssuedRun>();
  const issued: string[] = [];

  function token(claims: Record<string, string>, audience: string): string {
    const now = Math.floor(Date.now() / 1000);
    const header = base64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid: 'stand-in' }));
    const payload = base64url(
      JSON.stringify({ ...claims, aud: audience, jti: randomUUID(), iat: now, nbf: now - 5, exp: now + 300 }),
    );
    const signature = base64url(sign('sha256', Buffer.from(`${header}.${payload}`), privateKey));
    const jwt = `${header}.${payload}.${signature}`;
    registerTestSecret(jwt);
    issued.push(jwt);
    return jwt;
  }

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://stand-in');
    const run = runs.get(url.searchParams.get('run') ?? '');
    const authorization = req.headers.authorization ?? '';
    if (
      req.method !== 'GET' ||
      url.pathname !== '/token' ||
      !run ||
      authorization !== `Bearer ${run.requestToken}`
    ) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"message":"Bad credentials"}');
      return;
    }
    const audience = url.searchParams.get('audience') ?? 'https://github.com/' + run.claims.repository_owner;
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ count: 1, value: token(run.claims, audience) }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url: base,
    publicKey,
    issued,
    run(run) {
      const id = randomUUID();
      const requestToken = testSecret('actions-id-token-request');
      const issuedRun = {
        requestUrl: `${base}/token?api-version=2.0&run=${id}`,
        requestToken,
        claims: githubClaims(run),
      };
      runs.set(id, issuedRun);
      return issuedRun;
    },
    close: () =>
      new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve()))),
  };
}
