"""Read an image into the graph `validate` judges (fact sheet §5.2, §6.5): the only reading
`validate` does before the deep scan.

From the root (image index or manifest) it reads every platform manifest, the SOCI v2 indexes
their `com.amazon.soci.index-digest` annotations and the index's SOCI entries name, the SOCI v1
indexes an OCI layout lists in `index.json` or a registry returns as referrers of each manifest
(with the subject of each when it is not one of the image's manifests), and every ztoc those
indexes list. Which entries are SOCI indexes and of which manifest is `soci.discover`'s answer.

What a store can do is asked through the abilities of `content.base`: reading a manifest by
digest (`ReadsManifestsByDigest`), listing referrers (`ReadsReferrers`), listing its manifests
and holding blobs as files (`ListsManifests`, `HasBlobPaths`, an OCI layout). A registry client
and repository given by the caller answer the first two instead of the source.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from socikit.content.base import (
    HasBlobPaths,
    ImageSource,
    ListsManifests,
    ReadsManifestsByDigest,
    ReadsReferrers,
)
from socikit.errors import FormatError, SocikitError, UnreadableInputError
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor, Platform
from socikit.oci.manifest import ImageConfig, ImageManifest
from socikit.soci import discover
from socikit.validate.checks import decode_json, decode_ztoc
from socikit.validate.graph import (
    ImageGraph,
    JsonDoc,
    JsonRead,
    PlatformImage,
    V1Index,
    V1Listing,
    ZtocRead,
    prefetch_descriptors,
    readable_image,
    soci_entry_for,
    subject_descriptor,
    ztoc_descriptors,
)

if TYPE_CHECKING:
    from socikit.registry.client import RegistryClient


class _Reader:
    """The reads `collect_image` makes, each returning what was read or why it failed."""

    def __init__(self, source: ImageSource, client: RegistryClient | None, repo: str | None) -> None:
        self.source = source
        self.lookup: ReadsManifestsByDigest | None
        self.referrers: ReadsReferrers | None
        if client is not None and repo:
            self.lookup = self.referrers = _ClientLookup(client, repo)
        else:
            self.lookup = source if isinstance(source, ReadsManifestsByDigest) else None
            self.referrers = source if isinstance(source, ReadsReferrers) else None

    def json(self, desc: Descriptor) -> JsonRead:
        try:
            data = self.source.read_blob(desc)
        except UnreadableInputError:
            raise  # the machine's fault, not the image's: no check can judge it
        except SocikitError as exc:
            return str(exc)
        return _json_doc(desc, data)

    def json_by_digest(self, digest: str) -> JsonRead:
        """A manifest known only by digest (a lone manifest's index-digest): its size comes from
        the store itself, since no descriptor states one."""
        if isinstance(self.source, HasBlobPaths):
            try:
                path = self.source.blob_path(digest)
            except SocikitError:
                return f"{digest} is not in the image's store"
            try:
                size = path.stat().st_size
            except (FileNotFoundError, NotADirectoryError):
                return f"{digest} is not in the image's store"
            except OSError as exc:
                raise UnreadableInputError(f"cannot read {path}: {exc.strerror or exc}") from None
            return self.json(Descriptor(mt.MEDIA_TYPE_OCI_MANIFEST, digest, size))
        if self.lookup is not None:
            try:
                data, desc = self.lookup.read_manifest(digest)
            except UnreadableInputError:
                raise
            except SocikitError as exc:
                return str(exc)
            return _json_doc(desc, data)
        return f"{digest} cannot be looked up by digest in this source"

    def ztoc(self, desc: Descriptor) -> ZtocRead:
        try:
            data = self.source.read_blob(desc)
        except UnreadableInputError:
            raise
        except SocikitError as exc:
            return ZtocRead(None, f"cannot be read: {exc}")
        return ZtocRead(*decode_ztoc(data))

    def blob(self, desc: Descriptor) -> bytes | str:
        """A small blob's bytes, or why it cannot be read."""
        try:
            return self.source.read_blob(desc)
        except UnreadableInputError:
            raise
        except SocikitError as exc:
            return str(exc)


def _json_doc(desc: Descriptor, data: bytes) -> JsonDoc:
    obj, why = decode_json(data)
    return JsonDoc(desc, data, obj, why)


class _ClientLookup:
    """A registry client and repository given to `validate_image`, as the two abilities discovery
    asks of a store (`content.base.ReadsManifestsByDigest`, `ReadsReferrers`)."""

    def __init__(self, client: RegistryClient, repo: str) -> None:
        self.client = client
        self.repo = repo

    def read_manifest(self, digest: str) -> tuple[bytes, Descriptor]:
        return self.client.get_manifest(self.repo, digest)

    def referrers(self, subject_digest: str, artifact_type: str) -> list[Descriptor]:
        from socikit.registry.referrers import fetch_referrers

        return fetch_referrers(self.client, self.repo, subject_digest, artifact_type)


def collect_image(source: ImageSource, *, client: RegistryClient | None = None, repo: str | None = None) -> ImageGraph:
    """Read the image `source` resolves to, and its SOCI artifacts, into an `ImageGraph`.
    `client`/`repo` answer manifest-by-digest and referrers queries instead of the source.

    A reference that does not resolve, or a root that cannot be read (no such image or tag, an
    unreachable registry, a TLS failure), raises the source's SocikitError: there is no image to
    judge. So does a file of the input that is there but cannot be read (`UnreadableInputError`:
    permission denied), wherever it is. Any other read that fails below the root (a missing blob,
    a 404, a digest mismatch) is kept in the graph for the checks to report."""
    reader = _Reader(source, client, repo)
    root = source.resolve()
    doc = _json_doc(root, source.read_blob(root))
    graph = ImageGraph(root, doc)
    graph.is_index = root.media_type in mt.INDEX_MEDIA_TYPES or (doc.obj is not None and "manifests" in doc.obj)
    if graph.is_index:
        _collect_index(reader, graph, doc)
    else:
        graph.images = [_lone_manifest(reader, doc)]
    _collect_v2(reader, graph)
    _collect_v1(reader, graph)
    _collect_ztocs(reader, graph)
    return graph


def _collect_index(reader: _Reader, graph: ImageGraph, doc: JsonDoc) -> None:
    if doc.obj is None:
        return
    entries = []
    for raw in doc.obj.get("manifests") or []:
        try:
            entries.append(Descriptor.from_json(raw))
        except FormatError:
            continue  # reported by the schema check
    graph.index_entries = entries
    linked = set()
    for entry in entries:
        if not discover.is_image_entry(entry):
            continue  # SOCI indexes, nested indexes and foreign entries are not followed
        image = _platform_image(entry, entry.platform, reader.json(entry))
        graph.images.append(image)
        target = discover.index_digest_annotation(image.manifest.annotations) if image.manifest else None
        if target is not None:
            linked.add(target)
    graph.soci_entries = discover.soci_index_entries(entries, linked)


def _platform_image(entry: Descriptor, platform: Platform | None, doc: JsonRead) -> PlatformImage:
    if isinstance(doc, str):
        return PlatformImage(entry, None, platform, read_error=doc)
    manifest = None
    if doc.obj is not None:
        try:
            manifest = ImageManifest.from_json(doc.obj)
        except FormatError:
            manifest = None
    return PlatformImage(entry, doc, platform, manifest)


def _lone_manifest(reader: _Reader, doc: JsonDoc) -> PlatformImage:
    """The root is a manifest: its platform comes from its config."""
    image = _platform_image(doc.desc, None, doc)
    if image.manifest is not None:
        try:
            image.platform = ImageConfig.from_json(reader.source.read_blob(image.manifest.config)).platform()
        except UnreadableInputError:
            raise
        except SocikitError:
            image.platform = None
    return image


def _collect_v2(reader: _Reader, graph: ImageGraph) -> None:
    """Every SOCI v2 index the manifests' index-digest annotations name (through their image
    index entry, or by digest when the root is a lone manifest), then every SOCI entry of the
    image index not read yet; each digest once."""
    for image in graph.images:
        if image.manifest is None:
            continue
        target = discover.index_digest_annotation(image.manifest.annotations)
        if target is None or target in graph.v2_reads:
            continue
        entry = soci_entry_for(graph.soci_entries, target, image)
        if entry is not None:
            graph.v2_reads[target] = reader.json(entry)
        elif not graph.index_entries:
            graph.v2_reads[target] = reader.json_by_digest(target)
        # else: dangling (no entry of the image index has that digest), reported by the checks
    for entry in graph.soci_entries:
        if entry.artifact_type != mt.ARTIFACT_TYPE_SOCI_INDEX_V1 and entry.digest not in graph.v2_reads:
            graph.v2_reads[entry.digest] = reader.json(entry)


def _collect_v1(reader: _Reader, graph: ImageGraph) -> None:
    """An OCI layout lists its v1 indexes in index.json; any other store is asked for each
    manifest's referrers."""
    source = reader.source
    if isinstance(source, ListsManifests) and isinstance(source, HasBlobPaths):
        graph.v1_listings = [_v1_from_layout(reader, graph, source.entries())]
    elif reader.referrers is not None:
        graph.v1_listings = _v1_from_referrers(reader, graph, reader.referrers)


def _v1_from_layout(reader: _Reader, graph: ImageGraph, listed: list[Descriptor]) -> V1Listing:
    image_digests = {i.entry.digest for i in graph.images}
    listing = V1Listing(None)
    for entry in discover.layout_v1_candidates(listed, image_digests):
        doc = reader.json(entry)
        # An entry that cannot be read or is not a v1 index is some other artifact of the layout.
        if isinstance(doc, str) or doc.obj is None or discover.config_index_version(doc.obj) != "v1":
            continue
        listing.indexes.append(V1Index(entry, doc, _v1_subject(reader, graph, doc)))
    return listing


def _v1_from_referrers(reader: _Reader, graph: ImageGraph, store: ReadsReferrers) -> list[V1Listing]:
    seen: set[str] = set()
    listings = []
    for image in graph.images:
        try:
            found = discover.v1_indexes(store.referrers(image.entry.digest, discover.V1))
        except SocikitError as exc:
            listings.append(V1Listing(image, error=f"referrers query failed: {exc}"))
            continue
        listing = V1Listing(image)
        for desc in found:
            if desc.digest in seen:
                continue
            seen.add(desc.digest)
            doc = reader.json(desc)
            subject = None if isinstance(doc, str) else _v1_subject(reader, graph, doc)
            listing.indexes.append(V1Index(desc, doc, subject))
        listings.append(listing)
    return listings


def _v1_subject(reader: _Reader, graph: ImageGraph, doc: JsonDoc) -> JsonRead | None:
    """The subject manifest of a v1 index, read when it is not one of the image's manifests."""
    target = subject_descriptor(doc.obj)
    if target is None or readable_image(graph.images, target.digest) is not None:
        return None
    return reader.json(target)


def _collect_ztocs(reader: _Reader, graph: ImageGraph) -> None:
    """The ztocs of every SOCI index the checks will look at, in the order they look, once each."""
    docs = [d for d in graph.v2_reads.values() if isinstance(d, JsonDoc)]
    docs += [i.doc for listing in graph.v1_listings for i in listing.indexes if isinstance(i.doc, JsonDoc)]
    for doc in docs:
        if doc.obj is None:
            continue
        for desc in ztoc_descriptors(doc.obj):
            if desc.digest not in graph.ztocs:
                graph.ztocs[desc.digest] = reader.ztoc(desc)
        for desc in prefetch_descriptors(doc.obj):
            if desc.digest not in graph.prefetches:
                graph.prefetches[desc.digest] = reader.blob(desc)


__all__ = ["collect_image"]
