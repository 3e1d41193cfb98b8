"""A registry repository as an `ImageSource` / `ImageSink` (socikit.content.base).

The sink writes nothing but what it is given, in the order it is given: callers write blobs,
then manifests (by digest, so they are unreachable until tagged), then call `tag()` last. An
interrupted push therefore never leaves the tag pointing at missing content, and running it
again skips every blob already present (HEAD before upload).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import BinaryIO

from socikit.content.base import ImageSource
from socikit.errors import AuthError, ImageError, RegistryError
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor
from socikit.oci.digest import verify_blob
from socikit.registry.auth import Credentials, load_docker_credentials
from socikit.registry.client import RegistryClient
from socikit.registry.options import RegistryOptions
from socikit.registry.referrers import fetch_referrers
from socikit.registry.upload import StreamedUpload, open_streamed_upload

# Blobs `read_blob` will hold in memory (manifests, configs, ztocs); layers go through open_blob.
MAX_READ_BLOB = 256 << 20
_MANIFEST_TYPES = mt.MANIFEST_MEDIA_TYPES | mt.INDEX_MEDIA_TYPES


def credentials_for(host: str, options: RegistryOptions) -> Credentials | None:
    """Explicit `user`/`password` when given, else whatever the Docker config holds for `host`."""
    if options.user:
        user, sep, inline = options.user.partition(":")
        password = options.password if options.password is not None else (inline if sep else "")
        return Credentials(username=user, password=password)
    return load_docker_credentials(host, config_path=options.docker_config)


def open_registry_client(host: str, options: RegistryOptions | None = None) -> RegistryClient:
    opts = options or RegistryOptions()
    return RegistryClient(host, plain_http=opts.plain_http, tls_verify=opts.tls_verify,
                          cert_dir=opts.cert_dir, credentials=credentials_for(host, opts))


def _reference(tag: str | None, digest: str | None) -> str:
    if digest:
        return digest
    return tag or "latest"


class RegistrySource:
    """Read access to `<host>/<repo>:<reference>` (reference: tag or digest)."""

    def __init__(self, client: RegistryClient, repo: str, reference: str, *,
                 owns_client: bool = False) -> None:
        self.client = client
        self.repo = repo
        self.reference = reference
        self._owns_client = owns_client
        self._root: tuple[bytes, Descriptor] | None = None  # the manifest `reference` names, as read
        # A picklable `desc -> stream` callable that works in another process, when known.
        self.blob_opener: Callable[[Descriptor], BinaryIO] | None = None

    def __repr__(self) -> str:
        return f"RegistrySource({self.client.host}/{self.repo}:{self.reference})"

    def resolve(self) -> Descriptor:
        if self._root is None:
            # One GET by reference names the manifest and brings the bytes every caller reads
            # next: a round trip less than a HEAD and then a GET by digest.
            self._root = self.client.get_manifest(self.repo, self.reference)
        return self._root[1]

    def read_blob(self, desc: Descriptor) -> bytes:
        if desc.media_type in _MANIFEST_TYPES or desc.media_type.endswith("manifest.v1+json"):
            if self._root is not None and desc.digest == self._root[1].digest:
                data = self._root[0]
            else:
                data, _ = self.client.get_manifest(self.repo, desc.digest)
            verify_blob(data, digest=desc.digest, size=desc.size,
                        where=f"manifest {self.client.host}/{self.repo}@{desc.digest}")
            return data
        if desc.size > MAX_READ_BLOB:
            raise ImageError(f"blob {desc.digest} is {desc.size} bytes; stream it with open_blob")
        return self.client.get_blob(self.repo, desc)

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        return self.client.get_blob_stream(self.repo, desc)

    def read_manifest(self, digest: str) -> tuple[bytes, Descriptor]:
        """A manifest of this repository known only by digest (`content.base.ReadsManifestsByDigest`)."""
        return self.client.get_manifest(self.repo, digest)

    def referrers(self, subject_digest: str, artifact_type: str) -> list[Descriptor]:
        """Referrers of `subject_digest` (Referrers API or fallback tag; `content.base.ReadsReferrers`)."""
        return fetch_referrers(self.client, self.repo, subject_digest, artifact_type)

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> RegistrySource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RegistrySink:
    """Write access to `<host>/<repo>`, tagging `tag` last (no tag: content only)."""

    copies_while_indexing = True  # see StreamsBlobUploads: copies are round trips, unseen until tagged
    manifest_writes_at_once = 4  # see WritesManifestsAtOnce

    def __init__(self, client: RegistryClient, repo: str, tag: str | None, *,
                 owns_client: bool = False) -> None:
        self.client = client
        self.repo = repo
        self.tag_name = tag
        self._owns_client = owns_client
        self._manifests: dict[str, tuple[bytes, str]] = {}
        # A picklable `(desc, mount_from) -> StreamedUpload | None` that works in another process.
        self.upload_opener: Callable[[Descriptor, str | None], StreamedUpload | None] | None = None

    def __repr__(self) -> str:
        return f"RegistrySink({self.client.host}/{self.repo}:{self.tag_name})"

    def has_blob(self, desc: Descriptor) -> bool:
        return self.client.has_blob(self.repo, desc)

    def write_blob(self, desc: Descriptor, data: bytes) -> None:
        self.client.push_blob(self.repo, desc, data)

    def copy_blob(self, desc: Descriptor, source: ImageSource, *, verified: bool = False) -> None:
        """Mount from the source repository when it lives on this registry host, else stream."""
        if isinstance(source, RegistrySource) and source.client.host == self.client.host:
            if source.repo == self.repo and self.has_blob(desc):
                return
            try:
                self.client.mount_blob(self.repo, desc, source.repo)
                return
            except AuthError:
                raise
            except RegistryError:
                pass  # e.g. our credentials cannot read source.repo: copy through the source
        if self.has_blob(desc):
            return
        # An opener, not an open stream: should the registry lose the upload session, the
        # client reads the blob again from the source.
        self.client.push_blob(self.repo, desc, functools.partial(source.open_blob, desc))

    def stream_uploader(self, source: ImageSource) -> Callable[[Descriptor], StreamedUpload | None] | None:
        """What uploads a layer from the stream that indexes it (one pull per layer), for
        `source`'s layers: a picklable `desc -> StreamedUpload | None` (None: nothing to send),
        or None when streaming is not the way. From this registry host nothing is streamed:
        `copy_blob` mounts blobs (or finds them in place) without moving their bytes. From
        another registry each upload first tries to mount the blob from a repository of this
        registry named like the source's."""
        if self.upload_opener is None:
            return None
        mount_from = None
        if isinstance(source, RegistrySource):
            if source.client.host == self.client.host:
                return None
            mount_from = source.repo
        return functools.partial(_call_with_mount, self.upload_opener, mount_from)

    def write_manifest(self, desc: Descriptor, data: bytes) -> None:
        verify_blob(data, digest=desc.digest, size=desc.size, where=f"manifest {desc.digest}")
        self.client.put_manifest(self.repo, desc.digest, data, desc.media_type)
        self._manifests[desc.digest] = (data, desc.media_type)

    def write_tagged_manifest(self, desc: Descriptor, data: bytes) -> None:
        """One PUT by tag stores the manifest and moves the tag (a round trip less than a PUT by
        digest and another by tag); without a tag, the PUT by digest."""
        if not self.tag_name:
            self.write_manifest(desc, data)
            return
        verify_blob(data, digest=desc.digest, size=desc.size, where=f"manifest {desc.digest}")
        self.client.put_manifest(self.repo, self.tag_name, data, desc.media_type)
        self._manifests[desc.digest] = (data, desc.media_type)

    def write_referrer(self, desc: Descriptor, data: bytes, subject: Descriptor) -> None:
        """A manifest with a `subject` (SOCI v1 index): Referrers API, or the fallback tag."""
        self.client.push_referrer(self.repo, data, desc, subject.digest)

    def tag(self, desc: Descriptor) -> None:
        if not self.tag_name:
            return
        if desc.digest in self._manifests:
            data, media_type = self._manifests[desc.digest]
        else:
            data, got = self.client.get_manifest(self.repo, desc.digest)
            media_type = desc.media_type or got.media_type
        self.client.put_manifest(self.repo, self.tag_name, data, media_type)

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> RegistrySink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_registry_source(host: str, repository: str, tag: str | None = None, digest: str | None = None,
                         options: RegistryOptions | None = None) -> RegistrySource:
    """An ImageSource for `host/repository` at `digest` (preferred) or `tag` (default "latest")."""
    source = RegistrySource(open_registry_client(host, options), repository, _reference(tag, digest),
                            owns_client=True)
    source.blob_opener = functools.partial(_open_blob_in_new_client, host, repository, options)
    return source


def _open_blob_in_new_client(host: str, repository: str, options: RegistryOptions | None,
                             desc: Descriptor) -> BinaryIO:
    """Open a blob stream with a client of its own (used from worker processes). The stream checks
    the size but not the digest: what reads it verifies (the ztoc builder hashes every byte and
    compares the digest), and a second hash of each layer is CPU time that indexing competes for."""
    return open_registry_client(host, options).get_blob_stream(repository, desc, verify=False)


def open_registry_sink(host: str, repository: str, tag: str | None = None, digest: str | None = None,
                       options: RegistryOptions | None = None) -> RegistrySink:
    """An ImageSink for `host/repository` that tags `tag` last (a digest-only destination writes
    content without tagging)."""
    del digest  # a digest destination needs no tag: content is addressed by digest already
    sink = RegistrySink(open_registry_client(host, options), repository, tag, owns_client=True)
    sink.upload_opener = functools.partial(_open_upload_in_new_client, host, repository, options)
    return sink


def _open_upload_in_new_client(host: str, repository: str, options: RegistryOptions | None, desc: Descriptor,
                               mount_from: str | None) -> StreamedUpload | None:
    """Begin a streamed upload with a client of its own (used from worker processes)."""
    return open_streamed_upload(open_registry_client(host, options), repository, desc, mount_from=mount_from,
                                owns_client=True)


def _call_with_mount(opener: Callable[[Descriptor, str | None], StreamedUpload | None], mount_from: str | None,
                     desc: Descriptor) -> StreamedUpload | None:
    return opener(desc, mount_from)


__all__ = [
    "RegistryOptions",
    "RegistrySink",
    "RegistrySource",
    "credentials_for",
    "open_registry_client",
    "open_registry_sink",
    "open_registry_source",
]
