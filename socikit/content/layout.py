"""OCI image layout directories (image-spec `image-layout.md`) as image source and sink.

Reading never modifies the layout. Writing adds to it: a blob goes to a temp file in its final
directory, is verified against its digest and size, then renamed into place; `index.json` is
replaced atomically (temp file + rename) and keeps every entry and top-level field it had except
the entry being retagged. Read-modify-write cycles of `index.json` hold an exclusive `flock` on
the layout directory, so two socikit writers never drop each other's entries.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from socikit.atomic import atomic_writer, write_atomic
from socikit.content.base import ImageSource
from socikit.errors import DigestMismatchError, FormatError, ImageError
from socikit.oci import gojson
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor
from socikit.oci.digest import digest_hex, is_digest, sha256_digest

OCI_LAYOUT_FILE = b'{"imageLayoutVersion":"1.0.0"}'
_COPY_CHUNK = 1 << 20


# --- index.json: shared by layouts and oci-archives --------------------------------------------

def parse_index_json(data: bytes, where: str) -> dict[str, Any]:
    """The top-level object of an `index.json` (raw, so unknown fields survive a rewrite)."""
    try:
        index = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ImageError(f"{where}: index.json is not valid JSON ({exc})") from None
    if not isinstance(index, dict) or not isinstance(index.get("manifests") or [], list):
        raise ImageError(f"{where}: index.json is not an OCI image index")
    return index


def index_entries(index: dict[str, Any], where: str) -> list[Descriptor]:
    """The `manifests` of an index.json as descriptors; a malformed entry is an ImageError."""
    out = []
    for i, raw in enumerate(index.get("manifests") or []):
        try:
            out.append(Descriptor.from_json(raw))
        except FormatError as exc:
            raise ImageError(f"{where}: index.json entry {i}: {exc}") from None
    return out


def ref_name(desc: Descriptor) -> str:
    """The tag an index.json entry carries ("" for an untagged entry)."""
    return desc.annotations.get(mt.ANNOTATION_REF_NAME, "")


def resolve_entry(
    entries: list[Descriptor],
    *,
    tag: str,
    digest: str,
    where: str,
    hint: str,
    read_blob: Callable[[str], bytes | None],
) -> Descriptor:
    """Pick the image a reference names among index.json entries.

    A digest matches an entry, or else any manifest/index blob present (`read_blob(digest)`
    returns its bytes or None). A tag matches the `org.opencontainers.image.ref.name` annotation.
    Neither: the only entry that is not an artifact (SOCI v1 indexes are listed with their
    artifactType beside the image they index). `hint` shows how to name an image, e.g. `oci:DIR`."""
    if digest:
        for entry in entries:
            if entry.digest == digest:
                return entry
        data = read_blob(digest)
        if data is None:
            raise ImageError(f"{digest} is not in {where}")
        try:
            media_type = json.loads(data).get("mediaType")
        except (ValueError, UnicodeDecodeError, AttributeError):
            media_type = None
        if not isinstance(media_type, str) or not media_type:
            raise ImageError(f"{digest} in {where} is not a manifest or index with a mediaType")
        return Descriptor(media_type=media_type, digest=digest, size=len(data))
    if tag:
        for entry in entries:
            if ref_name(entry) == tag:
                return entry
        tags = sorted({ref_name(e) for e in entries} - {""})
        raise ImageError(f"tag {tag!r} is not in {where}; tags present: {', '.join(tags) or 'none'}")
    images = [e for e in entries if not e.artifact_type]
    if len(images) == 1:
        return images[0]
    if not images:
        raise ImageError(f"{where} holds no image (index.json lists none)")
    tags = sorted({ref_name(e) for e in images} - {""})
    listed = f" (tags: {', '.join(tags)})" if tags else ""
    raise ImageError(f"{where} holds {len(images)} images{listed}: name one with {hint}:TAG or {hint}@DIGEST")


# --- source --------------------------------------------------------------------------------------

def _open_layout_blob(root: str, desc: Descriptor) -> BinaryIO:
    return LayoutSource(root).open_blob(desc)


def _blob_path(root: Path, digest: str) -> Path:
    try:
        return root / "blobs" / "sha256" / digest_hex(digest)
    except FormatError:
        raise ImageError(f"unsupported digest {digest!r}: only sha256 blobs are stored in layouts") from None


class LayoutSource:
    """`oci:DIR[:TAG|@DIGEST]` as an ImageSource. Never writes to DIR."""

    def __init__(self, root: str | os.PathLike[str], *, tag: str = "", digest: str = "") -> None:
        self.root = Path(root)
        self.tag = tag
        self.digest = digest
        if not self.root.is_dir():
            raise ImageError(f"{self.root} is not an OCI image layout (no such directory)")
        if not (self.root / "oci-layout").exists() and not (self.root / "index.json").exists():
            raise ImageError(f"{self.root} is not an OCI image layout (no oci-layout or index.json)")
        # A picklable `desc -> stream` callable that works in another process.
        self.blob_opener = functools.partial(_open_layout_blob, str(self.root))

    def __repr__(self) -> str:
        return f"LayoutSource({str(self.root)!r}, tag={self.tag!r}, digest={self.digest!r})"

    def _index(self) -> dict[str, Any]:
        try:
            data = (self.root / "index.json").read_bytes()
        except FileNotFoundError:
            raise ImageError(f"{self.root} is not an OCI image layout (no index.json)") from None
        return parse_index_json(data, str(self.root))

    def entries(self) -> list[Descriptor]:
        """Every index.json entry, in file order."""
        return index_entries(self._index(), str(self.root))

    def tags(self) -> list[str]:
        """The tags (ref.name annotations) present, sorted."""
        return sorted({ref_name(e) for e in self.entries()} - {""})

    def resolve(self) -> Descriptor:
        def read(digest: str) -> bytes | None:
            path = _blob_path(self.root, digest)
            return path.read_bytes() if path.is_file() else None

        return resolve_entry(self.entries(), tag=self.tag, digest=self.digest, where=f"the layout {self.root}",
                             hint=f"oci:{self.root}", read_blob=read)

    def blob_path(self, digest: str) -> Path:
        return _blob_path(self.root, digest)

    def has_blob(self, desc: Descriptor) -> bool:
        path = _blob_path(self.root, desc.digest)
        return path.is_file() and path.stat().st_size == desc.size

    def read_blob(self, desc: Descriptor) -> bytes:
        path = _blob_path(self.root, desc.digest)
        try:
            data = path.read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            raise ImageError(f"blob {desc.digest} is missing from the layout {self.root}") from None
        if len(data) != desc.size:
            raise DigestMismatchError(
                f"blob {desc.digest} in {self.root} is {len(data)} bytes, its descriptor says {desc.size}"
            )
        if sha256_digest(data) != desc.digest:
            raise DigestMismatchError(f"blob {desc.digest} in {self.root} has another digest ({sha256_digest(data)})")
        return data

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        try:
            return open(_blob_path(self.root, desc.digest), "rb")
        except (FileNotFoundError, IsADirectoryError):
            raise ImageError(f"blob {desc.digest} is missing from the layout {self.root}") from None

    def close(self) -> None:
        pass


# --- sink ----------------------------------------------------------------------------------------

class LayoutSink:
    """`oci:DIR[:TAG]` as an ImageSink. DIR is created if missing; an existing directory must be
    empty or already an OCI layout (socikit never scatters blobs into an unrelated directory)."""

    def __init__(self, root: str | os.PathLike[str], *, tag: str = "") -> None:
        self.root = Path(root)
        self.tag_name = tag
        if self.root.exists() and not self.root.is_dir():
            raise ImageError(f"{self.root} exists and is not a directory: cannot write an OCI layout there")
        is_layout = (self.root / "oci-layout").exists() or (self.root / "index.json").exists()
        if self.root.is_dir() and not is_layout and any(self.root.iterdir()):
            raise ImageError(f"{self.root} is a non-empty directory that is not an OCI image layout")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
            if not (self.root / "oci-layout").exists():
                write_atomic(self.root / "oci-layout", OCI_LAYOUT_FILE)
        except OSError as exc:
            raise ImageError(f"cannot create the OCI layout {self.root}: {exc.strerror or exc}") from None
        with self._locked():
            if not (self.root / "index.json").exists():
                self._write_index({}, [])
            else:
                self._read_index()  # fail now, not after the layers were copied, if it is corrupt

    def __repr__(self) -> str:
        return f"LayoutSink({str(self.root)!r}, tag={self.tag_name!r})"

    # blobs

    def blob_path(self, digest: str) -> Path:
        return _blob_path(self.root, digest)

    def has_blob(self, desc: Descriptor) -> bool:
        path = _blob_path(self.root, desc.digest)
        return path.is_file() and path.stat().st_size == desc.size

    def write_blob(self, desc: Descriptor, data: bytes) -> None:
        if len(data) != desc.size or sha256_digest(data) != desc.digest:
            raise DigestMismatchError(
                f"refusing to store {desc.digest}: the {len(data)} bytes given have digest {sha256_digest(data)}"
            )
        if not self.has_blob(desc):
            write_atomic(_blob_path(self.root, desc.digest), data)

    def copy_blob(self, desc: Descriptor, source: ImageSource, *, verified: bool = False) -> None:
        """Stream a blob from `source` into the layout; it appears only once its digest and size
        were verified (a hard link instead of a copy when `source` is a layout on this filesystem;
        `verified` skips re-hashing the source blob before linking it)."""
        if self.has_blob(desc):
            return
        if isinstance(source, LayoutSource) and self._link_from(source, desc, verified=verified):
            return
        target = _blob_path(self.root, desc.digest)
        with contextlib.closing(source.open_blob(desc)) as stream, atomic_writer(target) as out:
            digest = hashlib.sha256()
            size = 0
            while chunk := stream.read(_COPY_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
            got = "sha256:" + digest.hexdigest()
            if got != desc.digest or size != desc.size:
                raise DigestMismatchError(
                    f"blob {desc.digest} read from {source!r} is {size} bytes with digest {got}; "
                    f"expected {desc.size} bytes"
                )

    def _link_from(self, source: LayoutSource, desc: Descriptor, *, verified: bool) -> bool:
        """Hard-link a blob from another layout on the same filesystem: blobs are immutable and
        content-addressed, so sharing the inode costs no copy. The source blob is verified first
        (a hard link would otherwise propagate a corrupt blob) unless the caller just did that.
        False if linking is not possible."""
        src = source.blob_path(desc.digest)
        try:
            if src.stat().st_size != desc.size:
                return False
            if not verified:
                digest = hashlib.sha256()
                with open(src, "rb") as handle:
                    while chunk := handle.read(_COPY_CHUNK):
                        digest.update(chunk)
                if "sha256:" + digest.hexdigest() != desc.digest:
                    raise DigestMismatchError(f"blob {desc.digest} in {source.root} has another digest")
            target = _blob_path(self.root, desc.digest)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.link")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            os.link(src, tmp)
            os.replace(tmp, target)
            return True
        except OSError:
            return False

    def write_manifest(self, desc: Descriptor, data: bytes) -> None:
        """Store a manifest or index blob; index.json is not touched (see `tag`)."""
        self.write_blob(desc, data)

    # index.json

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _read_index(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """(top-level fields other than `manifests`, raw entries) of index.json."""
        try:
            data = (self.root / "index.json").read_bytes()
        except FileNotFoundError:
            return {}, []
        index = parse_index_json(data, str(self.root))
        index_entries(index, str(self.root))  # validates every entry
        entries = list(index.get("manifests") or [])
        return {k: v for k, v in index.items() if k != "manifests"}, entries

    def _write_index(self, top: dict[str, Any], entries: list[dict[str, Any]]) -> None:
        # Go struct order of ocispec.Index: schemaVersion, mediaType, artifactType, manifests,
        # subject, annotations; other fields a foreign tool wrote are kept after them.
        index: dict[str, Any] = {"schemaVersion": top.get("schemaVersion", 2),
                                 "mediaType": top.get("mediaType") or mt.MEDIA_TYPE_OCI_INDEX}
        for key in ("artifactType",):
            if key in top:
                index[key] = top[key]
        index["manifests"] = entries
        for key, value in top.items():
            if key not in index:
                index[key] = value
        write_atomic(self.root / "index.json", gojson.dumps(index))

    def _update_index(self, change: Callable[[list[dict[str, Any]]], list[dict[str, Any]] | None]) -> None:
        """Apply `change` to the entries under the lock; None from `change` means no write."""
        with self._locked():
            top, entries = self._read_index()
            new = change(entries)
            if new is not None:
                self._write_index(top, new)

    def entries(self) -> list[Descriptor]:
        """Every index.json entry, in file order."""
        _, raw = self._read_index()
        return [Descriptor.from_json(e) for e in raw]

    def tag(self, desc: Descriptor) -> None:
        """Point the sink's tag (or the ref.name `desc` carries, when the sink has none) at
        `desc`: the entry holding that tag is replaced, every other entry is kept. Without any tag,
        `desc` is added as an untagged entry unless one with its digest is listed already."""
        if not self.has_blob(desc):
            raise ImageError(f"cannot tag {desc.digest}: its blob was not written to {self.root}")
        tag = self.tag_name or ref_name(desc)
        annotations = dict(desc.annotations)
        if tag:
            annotations[mt.ANNOTATION_REF_NAME] = tag
        entry = desc.with_changes(annotations=annotations).to_json()

        def change(entries: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
            if tag:
                return [e for e in entries if _raw_ref_name(e) != tag] + [entry]
            if any(e.get("digest") == desc.digest and not _raw_ref_name(e) for e in entries):
                return None
            return [*entries, entry]

        self._update_index(change)

    def add_entry(self, desc: Descriptor) -> None:
        """List `desc` in index.json without a tag, e.g. a SOCI v1 index with its artifactType
        (how the reference's layout store finds them). Nothing happens if its digest is listed."""
        if not self.has_blob(desc):
            raise ImageError(f"cannot list {desc.digest} in index.json: its blob was not written to {self.root}")

        def change(entries: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
            if any(e.get("digest") == desc.digest for e in entries):
                return None
            return [*entries, desc.to_json()]

        self._update_index(change)

    def remove_entries(self, digests: set[str]) -> None:
        """Drop every index.json entry whose digest is in `digests` (blobs stay; see remove_blob)."""
        self._update_index(lambda entries: [e for e in entries if e.get("digest") not in digests])

    def untag(self, tag: str) -> bool:
        """Drop the entry holding `tag`; False if no entry had it."""
        found = False

        def change(entries: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
            nonlocal found
            kept = [e for e in entries if _raw_ref_name(e) != tag]
            found = len(kept) != len(entries)
            return kept if found else None

        self._update_index(change)
        return found

    def write_referrer(self, desc: Descriptor, data: bytes, subject: Descriptor) -> None:
        """A manifest that refers to `subject` (a SOCI v1 index): stored, and listed untagged in
        index.json with its artifactType."""
        del subject  # a layout has no referrers API: the manifest's own `subject` field links them
        self.write_blob(desc, data)
        self.add_entry(Descriptor(media_type=desc.media_type, digest=desc.digest, size=desc.size,
                                  annotations=dict(desc.annotations), artifact_type=desc.artifact_type))

    def close(self) -> None:
        pass


def _raw_ref_name(entry: dict[str, Any]) -> str:
    annotations = entry.get("annotations")
    if not isinstance(annotations, dict):
        return ""
    value = annotations.get(mt.ANNOTATION_REF_NAME, "")
    return value if isinstance(value, str) else ""


def remove_blob(root: Path, digest: str) -> None:
    """Delete a blob from a layout if present (callers first make sure nothing lists it)."""
    if not is_digest(digest):
        raise ImageError(f"unsupported digest {digest!r}")
    with contextlib.suppress(FileNotFoundError):
        _blob_path(Path(root), digest).unlink()


__all__ = [
    "LayoutSink",
    "LayoutSource",
    "index_entries",
    "parse_index_json",
    "ref_name",
    "remove_blob",
    "resolve_entry",
]
