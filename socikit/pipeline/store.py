"""socikit's local store: an OCI image layout under `<root>/store` holding SOCI v1 indexes built by
`socikit create` (and their ztocs) until `socikit push --v1` sends them to a registry.

The store keeps *records*: one index.json entry per (SOCI index, image reference, platform), each
carrying the index's artifactType, the platform, and annotations that record the image reference,
the image manifest digest and the creation time, so listing needs nothing but index.json. One
index may have several records: byte-identical images under two references, or one manifest
listed under two platforms, give the same index. A blob leaves the store only when no record
needs it any more.

Digests given by a user may be unique prefixes (`resolve_digest`), and image references are
compared normalized (`RefQuery`), so what `index list` prints can be pasted back."""

from __future__ import annotations

import datetime as _dt
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from socikit.content.base import Closing, ImageSource
from socikit.content.layout import LayoutSink, LayoutSource, remove_blob
from socikit.content.reference import PATH_TRANSPORTS, ImageReference, parse_reference
from socikit.errors import ImageError, ImageReferenceError
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor, Platform
from socikit.oci.digest import is_digest
from socikit.soci.index import SociIndex, parse_soci_index

ANNOTATION_STORE_IMAGE_REF = "dev.socikit.image-ref"
ANNOTATION_STORE_CREATED = "dev.socikit.created"
MIN_PREFIX_DIGITS = 12
"""The shortest digest prefix accepted for a stored index or ztoc (as short as `git` allows
commonly, long enough that a prefix seldom matches two of a store's digests)."""

_PREFIX_RE = re.compile(r"^(?:sha256:)?([0-9a-fA-F]+)$")
_SOCI_ARTIFACT_TYPES = (mt.ARTIFACT_TYPE_SOCI_INDEX_V1, mt.ARTIFACT_TYPE_SOCI_INDEX_V2)


# --- digests a user types ---------------------------------------------------------------------------

def digest_prefix(text: str) -> str | None:
    """`sha256:<hex>` for a whole digest or a prefix of at least MIN_PREFIX_DIGITS hex digits,
    given with or without `sha256:` (upper-case hex is read as lower-case); None otherwise."""
    match = _PREFIX_RE.match(text)
    if match is None or not MIN_PREFIX_DIGITS <= len(match[1]) <= 64:
        return None
    return "sha256:" + match[1].lower()


def looks_like_short_digest(text: str) -> bool:
    """`sha256:` and fewer hex digits than a prefix needs: meant as a digest, too short to be one."""
    match = _PREFIX_RE.match(text)
    return text.startswith("sha256:") and match is not None and len(match[1]) < MIN_PREFIX_DIGITS


def resolve_digest(text: str, candidates: Iterable[str], *, what: str, where: str) -> str:
    """The one digest among `candidates` that `text` (a digest or a unique prefix) names.

    `what` names the kind of thing ("index", "ztoc") and `where` the place searched, for the
    errors: an unknown prefix says that nothing matches, an ambiguous one lists what it matched."""
    prefix = digest_prefix(text)
    if prefix is None:
        if looks_like_short_digest(text):
            raise ImageError(f"{text}: a digest prefix needs at least {MIN_PREFIX_DIGITS} hex digits")
        raise ImageError(
            f"{text} is not a digest: give sha256:<64 hex digits> or at least {MIN_PREFIX_DIGITS} of its "
            "first hex digits"
        )
    found = sorted({c for c in candidates if c.startswith(prefix)})
    if not found:
        raise ImageError(f"no {what} matches {text} in {where}")
    if len(found) > 1:
        kinds = what + ("es" if what.endswith("x") else "s")
        raise ImageError(f"{text} matches {len(found)} {kinds} in {where}: {', '.join(found)}; give more digits")
    return found[0]


# --- image references -------------------------------------------------------------------------------

def normalize_image_ref(text: str) -> str:
    """The form a reference is recorded in: parsed and printed again (Docker's normalization:
    `docker://alpine` -> `docker.io/library/alpine:latest`), paths made absolute."""
    return str(_absolute(parse_reference(text)))


def _absolute(ref: ImageReference) -> ImageReference:
    if ref.transport in PATH_TRANSPORTS and ref.path:
        return replace(ref, path=os.path.abspath(ref.path))
    return ref


@dataclass(frozen=True, slots=True)
class RefQuery:
    """An image reference a user gave to pick records (`index list --ref`, `index rm --ref`,
    `push`). A record matches when it names the same image location (transport, path or
    repository) and
    - the query's digest (whole, or a prefix of 12+ hex digits) starts the digest the record's
      reference names or the record's image manifest digest, when the query has a digest;
    - else the same tag (`oci:DIR` without tag or digest, the only image there, on either side
      matches every tag)."""

    reference: ImageReference  # normalized; `digest` may be a prefix
    location: str

    @classmethod
    def parse(cls, text: str) -> RefQuery:
        base, at, tail = text.rpartition("@")
        prefix = digest_prefix(tail) if at else None
        if prefix is not None and not is_digest(tail):
            # A digest prefix: parse the reference with a stand-in digest, then put the prefix back.
            placeholder = "sha256:" + "0" * 64
            ref = replace(parse_reference(f"{base}@{placeholder}"), digest=prefix)
        else:
            ref = parse_reference(text)
        ref = _absolute(ref)
        return cls(ref, str(replace(ref, tag="", digest="")))

    def __str__(self) -> str:
        return str(self.reference)

    def matches(self, image_ref: str, manifest_digest: str) -> bool:
        try:
            recorded = _absolute(parse_reference(image_ref))
        except ImageReferenceError:
            return False
        if str(replace(recorded, tag="", digest="")) != self.location:
            return False
        if self.reference.digest:
            return any(d.startswith(self.reference.digest) for d in (recorded.digest, manifest_digest) if d)
        if not self.reference.tag or not (recorded.tag or recorded.digest):
            return True  # `oci:DIR` (the only image there) on either side: any tag
        return recorded.tag == self.reference.tag

    def matched_digests(self, records: Iterable[StoredIndex]) -> set[str]:
        """The whole digests this query's digest (prefix) matched among `records` (empty without
        a digest): more than one means the prefix is ambiguous."""
        wanted = self.reference.digest
        if not wanted:
            return set()
        found: set[str] = set()
        for record in records:
            try:
                recorded = parse_reference(record.image_ref).digest
            except ImageReferenceError:
                recorded = ""
            found.update(d for d in (recorded, record.manifest_digest) if d and d.startswith(wanted))
        return found


# --- records -----------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class StoredIndex:
    """One record: a SOCI index built for an image reference and platform."""

    descriptor: Descriptor
    image_ref: str
    manifest_digest: str
    platform: Platform | None
    created: str

    @property
    def digest(self) -> str:
        return self.descriptor.digest

    @property
    def version(self) -> str:
        return "v1" if self.descriptor.artifact_type == mt.ARTIFACT_TYPE_SOCI_INDEX_V1 else "v2"

    @property
    def key(self) -> tuple[str, str, Platform | None]:
        return self.digest, self.image_ref, self.platform

    @classmethod
    def from_entry(cls, entry: Descriptor) -> StoredIndex:
        return cls(
            descriptor=entry,
            image_ref=entry.annotations.get(ANNOTATION_STORE_IMAGE_REF, ""),
            manifest_digest=entry.annotations.get(mt.ANNOTATION_IMAGE_MANIFEST_DIGEST, ""),
            platform=entry.platform,
            created=entry.annotations.get(ANNOTATION_STORE_CREATED, ""),
        )


def _record_of(raw: dict[str, Any]) -> StoredIndex | None:
    entry = Descriptor.from_json(raw)
    return StoredIndex.from_entry(entry) if entry.artifact_type in _SOCI_ARTIFACT_TYPES else None


@dataclass(frozen=True, slots=True)
class Removal:
    """A record removed by `LocalStore.remove`; `blob_removed` is False while another record
    still names the index (its blob stays)."""

    record: StoredIndex
    blob_removed: bool


EntriesChange = Callable[[list[dict[str, Any]]], list[dict[str, Any]] | None]


class _StoreLayout(LayoutSink):
    """The store's layout, whose index.json is changed record by record under the layout's lock
    (a read-modify-write that concurrent `create`s and `index rm`s cannot interleave)."""

    def change_entries(self, change: EntriesChange) -> None:
        self._update_index(change)


class LocalStore(Closing):
    """The store as an ImageSink for `create`, and the read side of `index`/`ztoc`/`push`."""

    def __init__(self, root: Path, *, image_ref: str = "") -> None:
        self.root = Path(root)
        self.layout_dir = self.root / "store"
        self.image_ref = normalize_image_ref(image_ref) if image_ref else ""
        self._sink: _StoreLayout | None = None

    @property
    def sink(self) -> _StoreLayout:
        if self._sink is None:
            self._sink = _StoreLayout(self.layout_dir)
        return self._sink

    @property
    def where(self) -> str:
        return f"the local store {self.layout_dir}"

    # ImageSink (only what `create` writes: blobs and referrers)
    def has_blob(self, desc: Descriptor) -> bool:
        return self.sink.has_blob(desc)

    def write_blob(self, desc: Descriptor, data: bytes) -> None:
        self.sink.write_blob(desc, data)

    def copy_blob(self, desc: Descriptor, source: ImageSource, *, verified: bool = False) -> None:
        self.sink.copy_blob(desc, source, verified=verified)

    def write_manifest(self, desc: Descriptor, data: bytes) -> None:
        self.sink.write_manifest(desc, data)

    def tag(self, desc: Descriptor) -> None:
        raise ImageError("the local store holds SOCI indexes only; it cannot be tagged")

    def write_referrer(self, desc: Descriptor, data: bytes, subject: Descriptor) -> None:
        """Store the index and record it for this store's image reference and the subject's
        platform; a record with that (index, reference, platform) is replaced (a newer creation
        time, listed last), every other record is kept."""
        self.sink.write_blob(desc, data)
        created = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        annotations = {
            ANNOTATION_STORE_IMAGE_REF: self.image_ref,
            mt.ANNOTATION_IMAGE_MANIFEST_DIGEST: subject.digest,
            ANNOTATION_STORE_CREATED: created,
        }
        entry = Descriptor(media_type=desc.media_type, digest=desc.digest, size=desc.size, annotations=annotations,
                           platform=subject.platform, artifact_type=desc.artifact_type)
        record = StoredIndex.from_entry(entry)

        def put(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
            kept = [e for e in entries if (r := _record_of(e)) is None or r.key != record.key]
            return [*kept, entry.to_json()]

        if not self.sink.has_blob(desc):
            raise ImageError(f"cannot record {desc.digest}: its blob was not written to {self.layout_dir}")
        self.sink.change_entries(put)

    def close(self) -> None:
        pass

    # read side
    def indexes(self, *, ref: str | RefQuery | None = None) -> list[StoredIndex]:
        """Every record, in the order recorded (oldest first); with `ref`, those of that image
        reference (an ImageError when its digest prefix matches more than one digest)."""
        if not (self.layout_dir / "index.json").exists():
            return []
        records = [StoredIndex.from_entry(e) for e in LayoutSource(self.layout_dir).entries()
                   if e.artifact_type in _SOCI_ARTIFACT_TYPES]
        if ref is None:
            return records
        query = ref if isinstance(ref, RefQuery) else RefQuery.parse(ref)
        chosen = [r for r in records if query.matches(r.image_ref, r.manifest_digest)]
        matched = query.matched_digests(chosen)
        if len(matched) > 1:
            raise ImageError(f"{query} matches {len(matched)} digests in {self.where}: "
                             f"{', '.join(sorted(matched))}; give more digits")
        return chosen

    def resolve_index(self, text: str) -> str:
        """The whole digest of the stored index that `text` (a digest or unique prefix) names."""
        return resolve_digest(text, (r.digest for r in self.indexes()), what="index", where=self.where)

    def resolve_ztoc(self, text: str) -> str:
        """The whole digest of the stored ztoc that `text` (a digest or unique prefix) names."""
        return resolve_digest(text, (d.digest for d, _ in self.ztocs()), what="ztoc", where=self.where)

    def read_blob(self, digest: str) -> bytes:
        if not is_digest(digest):
            raise ImageError(f"unsupported digest {digest!r}")
        path = self.layout_dir / "blobs" / "sha256" / digest.split(":", 1)[1]
        try:
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            raise ImageError(f"{digest} is recorded but its blob is missing from {self.where}") from None
        except OSError as exc:
            raise ImageError(f"cannot read {digest} from {self.where}: {exc.strerror or exc}") from None

    def read_index(self, digest: str) -> SociIndex:
        return parse_soci_index(self.read_blob(digest))

    def ztocs(self) -> list[tuple[Descriptor, str]]:
        """(ztoc descriptor, layer digest) of every ztoc the stored indexes name, once each."""
        seen: dict[str, tuple[Descriptor, str]] = {}
        for digest in dict.fromkeys(r.digest for r in self.indexes()):
            for ztoc in self.read_index(digest).ztocs:
                seen.setdefault(ztoc.digest, (ztoc, ztoc.annotations.get(mt.ANNOTATION_IMAGE_LAYER_DIGEST, "")))
        return list(seen.values())

    def remove(self, *, digests: Iterable[str] = (), ref: str | RefQuery | None = None) -> list[Removal]:
        """Remove records: those of the given index digests (each a digest or unique prefix;
        every reference's record unless `ref` is given too), or those of `ref`. An index blob
        goes once no record names it, a ztoc once no remaining index needs it."""
        wanted = {self.resolve_index(text) for text in digests}
        query = ref if isinstance(ref, RefQuery) or ref is None else RefQuery.parse(ref)
        if not wanted and query is None:
            raise ImageError("give index digests or a reference whose indexes to remove")
        chosen = {r.key for r in (self.indexes(ref=query) if query is not None else self.indexes())
                  if not wanted or r.digest in wanted}
        if query is not None and not chosen:
            which = f" among {', '.join(sorted(wanted))}" if wanted else ""
            raise ImageError(f"no SOCI index in {self.where} was built from {query}{which}")
        removed: list[StoredIndex] = []
        remaining: list[StoredIndex] = []

        def drop(entries: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
            removed.clear()
            remaining.clear()
            kept = []
            for entry in entries:
                record = _record_of(entry)
                if record is not None and record.key in chosen:
                    removed.append(record)
                    continue
                kept.append(entry)
                if record is not None:
                    remaining.append(record)
            return kept if removed else None

        self.sink.change_entries(drop)
        still_named = {r.digest for r in remaining}
        gone = {r.digest for r in removed} - still_named
        keep_ztocs = {z.digest for d in still_named for z in self._ztocs_of(d)}
        drop_ztocs = {z.digest for d in gone for z in self._ztocs_of(d)} - keep_ztocs
        for digest in sorted(drop_ztocs):
            remove_blob(self.layout_dir, digest)
        for digest in sorted(gone):
            remove_blob(self.layout_dir, digest)
        return [Removal(r, r.digest in gone) for r in removed]

    def _ztocs_of(self, digest: str) -> list[Descriptor]:
        """The blobs a stored index lists: its ztocs and prefetch artifacts."""
        try:
            return list(_blobs_of(self.read_index(digest)))
        except ImageError:
            return []  # a blob already gone (a concurrent rm) names nothing that must stay


def _blobs_of(index: SociIndex) -> tuple[Descriptor, ...]:
    """The blobs a stored index lists: its ztocs and prefetch artifacts."""
    return (*index.ztocs, *index.prefetches)


def index_summary(stored: StoredIndex) -> dict[str, object]:
    return {
        "digest": stored.descriptor.digest,
        "size": stored.descriptor.size,
        "image_ref": stored.image_ref,
        "platform": str(stored.platform) if stored.platform else "",
        "media_type": stored.descriptor.media_type,
        "manifest": stored.manifest_digest,
        "version": stored.version,
        "created": stored.created,
    }


__all__ = [
    "MIN_PREFIX_DIGITS",
    "LocalStore",
    "RefQuery",
    "Removal",
    "StoredIndex",
    "digest_prefix",
    "index_summary",
    "looks_like_short_digest",
    "normalize_image_ref",
    "resolve_digest",
]
