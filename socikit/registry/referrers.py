"""OCI distribution-spec v1.1 referrers: the Referrers API and the "Referrers Tag Schema"
fallback (`sha256-<hex>` tag holding an OCI index), as oras-go maintains it for `soci push`.

Pure helpers (`referrers_tag`, `referrer_entry`, `build_referrers_index`, `parse_referrers_index`,
`filter_by_artifact_type`) take and return values; `fetch_referrers` and `push_referrer` talk to
a registry through the public methods `ReferrersClient` names, which `RegistryClient` has. This
module never imports the client (the client imports it for its `referrers()` /
`push_referrer()` conveniences), so the two form no cycle.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Generator, Iterable, Mapping, Sequence
from typing import Protocol

from socikit.errors import FormatError, RegistryError, RegistryStatusError
from socikit.oci import gojson
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor
from socikit.oci.digest import sha256_digest
from socikit.registry.pages import Page


class ReferrersClient(Protocol):
    """What the referrers functions need from a registry client (`RegistryClient` has it all)."""

    @property
    def host(self) -> str: ...

    def get_pages(self, repo: str, endpoint: str, *, params: Mapping[str, str] | None = None,
                  accept: str | None = None, ok: Iterable[int] = (200,),
                  max_pages: int | None = None) -> Generator[Page, None, None]: ...

    def get_manifest(self, repo: str, ref: str) -> tuple[bytes, Descriptor]: ...

    def put_manifest(self, repo: str, ref: str, data: bytes, media_type: str) -> Mapping[str, str]: ...

    def delete_manifest(self, repo: str, digest: str) -> None: ...


logger = logging.getLogger(__name__)

_TAG_BAD_CHARS = re.compile(r"[^a-zA-Z0-9._-]")
# Pages of a Referrers API answer followed before giving up (each holds many descriptors).
_MAX_PAGES = 100


def referrers_tag(subject_digest: str) -> str:
    """The fallback tag of a subject: `<alg>-<encoded>` with the algorithm cut to 32 and the
    encoded part to 64 characters, and characters a tag may not hold replaced by `-`."""
    alg, sep, encoded = subject_digest.partition(":")
    if not sep or not alg or not encoded:
        raise FormatError(f"not a digest: {subject_digest!r}")
    return _TAG_BAD_CHARS.sub("-", f"{alg[:32]}-{encoded[:64]}")


def referrer_entry(desc: Descriptor, manifest: bytes | None = None) -> Descriptor:
    """The descriptor listed for a referrer: media type, digest, size, annotations and artifact
    type only. Missing artifact type/annotations are taken from the manifest bytes (its
    `artifactType`, else `config.mediaType`; its `annotations`)."""
    artifact_type = desc.artifact_type
    annotations = dict(desc.annotations)
    if manifest is not None and (not artifact_type or not annotations):
        try:
            doc = json.loads(manifest)
        except ValueError:
            raise FormatError("referrer manifest is not JSON") from None
        if isinstance(doc, dict):
            if not artifact_type:
                artifact_type = str(doc.get("artifactType") or "")
                config = doc.get("config")
                if not artifact_type and isinstance(config, dict):
                    artifact_type = str(config.get("mediaType") or "")
            if not annotations and isinstance(doc.get("annotations"), dict):
                annotations = {str(k): str(v) for k, v in doc["annotations"].items()}
    return Descriptor(media_type=desc.media_type, digest=desc.digest, size=desc.size,
                      annotations=annotations, artifact_type=artifact_type)


def build_referrers_index(manifests: Iterable[Descriptor]) -> bytes:
    """A fallback-tag index as Go's `json.Marshal(ocispec.Index)` writes it: compact,
    `schemaVersion`, `mediaType`, `manifests` in that order."""
    return gojson.dumps({
        "schemaVersion": 2,
        "mediaType": mt.MEDIA_TYPE_OCI_INDEX,
        "manifests": [d.to_json() for d in manifests],
    })


def parse_referrers_index(data: bytes) -> list[Descriptor]:
    """The `manifests` of an image index; FormatError when `data` is not one."""
    try:
        doc = json.loads(data)
    except ValueError:
        raise FormatError("referrers index is not JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("manifests", []), list):
        raise FormatError("referrers index has no manifests list")
    media_type = doc.get("mediaType", mt.MEDIA_TYPE_OCI_INDEX)
    if media_type != mt.MEDIA_TYPE_OCI_INDEX:
        raise FormatError(f"referrers index has media type {media_type!r}")
    return [Descriptor.from_json(m) for m in doc.get("manifests") or []]


def filter_by_artifact_type(descs: Sequence[Descriptor], artifact_type: str | None) -> list[Descriptor]:
    if not artifact_type:
        return list(descs)
    return [d for d in descs if d.artifact_type == artifact_type]


def fetch_referrers(client: ReferrersClient, repo: str, subject_digest: str,
                    artifact_type: str | None = None) -> list[Descriptor]:
    """Referrers of `subject_digest` in `repo`, in registry order.

    Uses `GET /v2/<repo>/referrers/<digest>[?artifactType=]` (all `Link` pages), filtering here
    unless the registry says `OCI-Filters-Applied: artifactType`. A 404 or a non-index answer
    means no Referrers API: the `sha256-<hex>` tag is read instead (missing or not an index: no
    referrers)."""
    params = {"artifactType": artifact_type} if artifact_type else None
    where = f"referrers of {client.host}/{repo}@{subject_digest}"
    found: list[Descriptor] = []
    pages = client.get_pages(repo, f"referrers/{subject_digest}", params=params,
                             accept=mt.MEDIA_TYPE_OCI_INDEX, ok=(200, 404), max_pages=_MAX_PAGES)
    with contextlib.closing(pages):
        for number, page in enumerate(pages):
            if page.status == 404 or page.media_type != mt.MEDIA_TYPE_OCI_INDEX:
                if number:
                    raise RegistryError(f"{where}: page {number + 1} is not an index")
                break
            try:
                descs = parse_referrers_index(page.body)
            except FormatError as exc:
                raise RegistryError(f"{where}: {exc}") from None
            filtered = "artifacttype" in page.headers.get("OCI-Filters-Applied", "").lower()
            found.extend(descs if filtered else filter_by_artifact_type(descs, artifact_type))
        else:
            return found
    return _from_fallback_tag(client, repo, subject_digest, artifact_type)


def _read_fallback_index(client: ReferrersClient, repo: str,
                         tag: str) -> tuple[list[Descriptor], Descriptor | None]:
    try:
        data, desc = client.get_manifest(repo, tag)
    except RegistryStatusError as exc:
        if exc.status == 404:
            return [], None
        raise
    try:
        return parse_referrers_index(data), desc
    except FormatError as exc:
        logger.warning("fallback tag %s in %s/%s is not a referrers index (%s)", tag, client.host, repo, exc)
        return [], desc


def _from_fallback_tag(client: ReferrersClient, repo: str, subject_digest: str,
                       artifact_type: str | None) -> list[Descriptor]:
    descs, _ = _read_fallback_index(client, repo, referrers_tag(subject_digest))
    return filter_by_artifact_type(descs, artifact_type)


def push_referrer(client: ReferrersClient, repo: str, manifest: bytes, desc: Descriptor,
                  subject_digest: str) -> Descriptor:
    """PUT `manifest` (exact bytes, by digest) and, without an `OCI-Subject` answer, list it in
    the fallback tag index: read it (missing → empty), append the entry if absent, PUT the new
    index to the tag, then DELETE the superseded index by digest (registries that refuse
    deletes are ignored). Returns the listed entry.

    Re-running after an interruption converges: the manifest PUT is idempotent and the entry
    is only appended when missing. Two concurrent pushers may lose an entry (docker-registry
    has no conditional PUT), as with oras-go."""
    entry = referrer_entry(desc, manifest)
    headers = client.put_manifest(repo, desc.digest, manifest, desc.media_type)
    if headers.get("OCI-Subject"):
        return entry
    tag = referrers_tag(subject_digest)
    existing, old = _read_fallback_index(client, repo, tag)
    if any(d.digest == entry.digest for d in existing):
        return entry
    index = build_referrers_index([*existing, entry])
    client.put_manifest(repo, tag, index, mt.MEDIA_TYPE_OCI_INDEX)
    if old is not None and old.digest != sha256_digest(index):
        try:
            client.delete_manifest(repo, old.digest)
        except RegistryStatusError as exc:
            if exc.status not in (400, 404, 405):
                raise
            logger.debug("old referrers index %s left in place (HTTP %d)", old.digest, exc.status)
    return entry


__all__ = [
    "ReferrersClient",
    "build_referrers_index",
    "fetch_referrers",
    "filter_by_artifact_type",
    "parse_referrers_index",
    "push_referrer",
    "referrer_entry",
    "referrers_tag",
]