/**
 * Media types and annotation keys, named as the specs name them.
 * OCI image spec: https://github.com/opencontainers/image-spec/blob/main/media-types.md
 * Conda CEP "OCI registries as conda channels" (v1) for the conda types.
 */

export const MEDIA_TYPE_OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const MEDIA_TYPE_OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const MEDIA_TYPE_OCI_EMPTY = 'application/vnd.oci.empty.v1+json';
export const MEDIA_TYPE_DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const MEDIA_TYPE_DOCKER_MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';

/** Every manifest media type this project reads; sent as Accept on manifest requests. */
export const MANIFEST_MEDIA_TYPES = [
  MEDIA_TYPE_OCI_MANIFEST,
  MEDIA_TYPE_OCI_INDEX,
  MEDIA_TYPE_DOCKER_MANIFEST,
  MEDIA_TYPE_DOCKER_MANIFEST_LIST,
] as const;

/** The empty JSON blob `{}` that artifacts without a config point at (image spec 1.1). */
export const EMPTY_JSON_BYTES = new TextEncoder().encode('{}');
export const EMPTY_JSON_DIGEST =
  'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a' as const;

export const ANNOTATION_TITLE = 'org.opencontainers.image.title';
export const ANNOTATION_SOURCE = 'org.opencontainers.image.source';
export const ANNOTATION_REVISION = 'org.opencontainers.image.revision';
export const ANNOTATION_CREATED = 'org.opencontainers.image.created';
export const ANNOTATION_DESCRIPTION = 'org.opencontainers.image.description';
export const ANNOTATION_LICENSES = 'org.opencontainers.image.licenses';
/** Tag name of a manifest in an OCI image layout's index.json. */
export const ANNOTATION_REF_NAME = 'org.opencontainers.image.ref.name';

export const HEADER_DOCKER_CONTENT_DIGEST = 'docker-content-digest';
export const HEADER_OCI_SUBJECT = 'oci-subject';
export const HEADER_DOCKER_UPLOAD_UUID = 'docker-upload-uuid';
