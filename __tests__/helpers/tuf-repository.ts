/**
 * A loopback TUF repository (https://theupdateframework.github.io/specification/latest/) serving
 * given targets, for clients that take their trust material through TUF only, such as
 * sigstore-js's CLI (`sigstore verify --tuf-mirror-url … --tuf-root-path …`), which then verifies
 * against the trusted_root.json served here.
 *
 * One ed25519 key holds all four top-level roles; `consistent_snapshot` is false, so the client
 * fetches `timestamp.json`, `snapshot.json`, `targets.json` and `targets/<name>` (and asks for
 * `2.root.json`, answered 404: no newer root). Metadata is signed over its canonical JSON
 * (sorted keys, no whitespace; the values here are ASCII strings, integers and booleans).
 */
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { canonicalStringify } from '../../src/util/canonical-json.js';

export interface TufRepository {
  readonly url: string;
  /** The initial root.json a client is given. */
  readonly rootPath: string;
  /** Request paths served, in order. */
  readonly requests: string[];
  close(): Promise<void>;
}

const EXPIRES = '2099-01-01T00:00:00Z';
const SPEC_VERSION = '1.0.31';

export async function startTufRepository(targets: Record<string, Uint8Array>): Promise<TufRepository> {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x ?? '', 'base64url');
  const key = { keytype: 'ed25519', scheme: 'ed25519', keyval: { public: raw.toString('hex') } };
  const keyid = createHash('sha256').update(canonicalStringify(key)).digest('hex');
  const role = { keyids: [keyid], threshold: 1 };

  function signed(body: Record<string, unknown>): Buffer {
    const payload = { ...body, spec_version: SPEC_VERSION, version: 1, expires: EXPIRES };
    const sig = sign(null, Buffer.from(canonicalStringify(payload)), privateKey).toString('hex');
    return Buffer.from(JSON.stringify({ signed: payload, signatures: [{ keyid, sig }] }));
  }
  function fileMeta(bytes: Uint8Array) {
    return { length: bytes.length, hashes: { sha256: createHash('sha256').update(bytes).digest('hex') } };
  }

  const targetsJson = signed({
    _type: 'targets',
    targets: Object.fromEntries(Object.entries(targets).map(([name, bytes]) => [name, fileMeta(bytes)])),
  });
  const snapshotJson = signed({ _type: 'snapshot', meta: { 'targets.json': { version: 1 } } });
  const timestampJson = signed({ _type: 'timestamp', meta: { 'snapshot.json': { version: 1 } } });
  const rootJson = signed({
    _type: 'root',
    consistent_snapshot: false,
    keys: { [keyid]: key },
    roles: { root: role, targets: role, snapshot: role, timestamp: role },
  });
  const files = new Map<string, Uint8Array>([
    ['/1.root.json', rootJson],
    ['/timestamp.json', timestampJson],
    ['/snapshot.json', snapshotJson],
    ['/targets.json', targetsJson],
    ...Object.entries(targets).map(([name, bytes]): [string, Uint8Array] => [`/targets/${name}`, bytes]),
  ]);

  const dir = await mkdtemp(join(tmpdir(), 'conda-oci-tuf-'));
  const rootPath = join(dir, 'root.json');
  await writeFile(rootPath, rootJson);
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://stand-in').pathname;
    requests.push(path);
    const body = req.method === 'GET' ? files.get(path) : undefined;
    if (body) res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(body);
    else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    rootPath,
    requests,
    async close() {
      await new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
