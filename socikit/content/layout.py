"""OCI image layout directories (image-spec `image-layout.md`) as image source and sink.

Reading never modifies the layout. Writing adds to it: blobs go to a temp file in the same
directory, are verified, then renamed into place; `index.json` is replaced atomically and keeps
every entry it had except the one being retagged.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any, BinaryIO

from socikit.atomic import atomic_writer, write_atomic
from socikit.content.base import ImageSource
from socikit.errors import DigestMismatchError, FormatError, ImageError
from socikit.oci import gojson
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor
from socikit.oci.digest import digest_hex, sha256_digest

OCI_LAYOUT_FILE = b'{"imageLayoutVersion":"1.0.0"}'


def _read_index_json(root: Path) -> dict[str, Any]:
    path = root / "index.json"
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise ImageError(f"{root} is not an OCI image layout (no index.json)") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ImageError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("manifests", []), list):
        raise ImageError(f"{path} is not an OCI image index")
    return data


def _open_layout_blob(root: str, desc: Descriptor) -> BinaryIO:
    return LayoutSource(root).open_blob(desc)


class LayoutSource:
    """`oci:DIR[:TAG|@DIGEST]` as an ImageSource."""

    def __init__(self, root: str | os.PathLike[str], *, tag: str = "", digest: str = "") -> None:
        self.root = Path(root)
        self.tag = tag
        self.digest = digest
        if not (self.root / "oci-layout").exists() and not (self.root / "index.json").exists():
            raise ImageError(f"{self.root} is not an OCI image layout (no oci-layout or index.json)")
        # A picklable `desc -> stream` callable that works in another process.
        self.blob_opener = functools.partial(_open_layout_blob, str(self.root))

    def entries(self) -> list[Descriptor]:
        return [Descriptor.from_json(m) for m in _read_index_json(self.root).get("manifests") or []]

    def resolve(self) -> Descriptor:
        entries = self.entries()
        if self.digest:
            for entry in entries:
                if entry.digest == self.digest:
                    return entry
            path = self.blob_path(self.digest)
            if not path.exists():
                raise ImageError(f"{self.digest} is not in the layout {self.root}")
            data = path.read_bytes()
            media_type = json.loads(data).get("mediaType") or mt.MEDIA_TYPE_OCI_MANIFEST
            return Descriptor(media_type=media_type, digest=self.digest, size=len(data))
        if self.tag:
            for entry in entries:
                if entry.annotations.get(mt.ANNOTATION_REF_NAME) == self.tag:
                    return entry
            tags = sorted(
                {e.annotations[mt.ANNOTATION_REF_NAME] for e in entries if mt.ANNOTATION_REF_NAME in e.annotations}
            )
            raise ImageError(
                f"tag {self.tag!r} is not in the layout {self.root}; tags present: {', '.join(tags) or 'none'}"
            )
        images = [e for e in entries if not e.artifact_type]
        if len(images) == 1:
            return images[0]
        raise ImageError(f"the layout {self.root} holds {len(images)} images: name one with oci:{self.root}:TAG")

    def blob_path(self, digest: str) -> Path:
        try:
            return self.root / "blobs" / "sha256" / digest_hex(digest)
        except FormatError:
            raise ImageError(f"unsupported digest {digest!r}") from None

    def read_blob(self, desc: Descriptor) -> bytes:
        path = self.blob_path(desc.digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ImageError(f"blob {desc.digest} is missing from the layout {self.root}") from None
        if len(data) != desc.size or sha256_digest(data) != desc.digest:
            raise DigestMismatchError(f"blob {desc.digest} in {self.root} does not match its digest or size")
        return data

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        try:
            return open(self.blob_path(desc.digest), "rb")
        except FileNotFoundError:
            raise ImageError(f"blob {desc.digest} is missing from the layout {self.root}") from None

    def close(self) -> None:
        pass


class LayoutSink:
    """`oci:DIR[:TAG]` as an ImageSink (created if missing)."""

    def __init__(self, root: str | os.PathLike[str], *, tag: str = "") -> None:
        self.root = Path(root)
        self.tag_name = tag
        self.root.mkdir(parents=True, exist_ok=True)
        if not (self.root / "oci-layout").exists():
            write_atomic(self.root / "oci-layout", OCI_LAYOUT_FILE)
        if not (self.root / "index.json").exists():
            self._write_index([])

    def blob_path(self, digest: str) -> Path:
        return self.root / "blobs" / "sha256" / digest_hex(digest)

    def has_blob(self, desc: Descriptor) -> bool:
        path = self.blob_path(desc.digest)
        return path.exists() and path.stat().st_size == desc.size

    def write_blob(self, desc: Descriptor, data: bytes) -> None:
        if sha256_digest(data) != desc.digest or len(data) != desc.size:
            raise DigestMismatchError(f"refusing to store {desc.digest}: the bytes have another digest or size")
        if not self.has_blob(desc):
            write_atomic(self.blob_path(desc.digest), data)

    def copy_blob(self, desc: Descriptor, source: ImageSource) -> None:
        if self.has_blob(desc):
            return
        if isinstance(source, LayoutSource) and self._link_from(source, desc):
            return
        stream = source.open_blob(desc)
        try:
            digest = hashlib.sha256()
            size = 0
            with atomic_writer(self.blob_path(desc.digest)) as out:
                while chunk := stream.read(1 << 20):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                if "sha256:" + digest.hexdigest() != desc.digest or size != desc.size:
                    raise DigestMismatchError(f"blob {desc.digest} read from the source has another digest or size")
        finally:
            stream.close()

    def _link_from(self, source: LayoutSource, desc: Descriptor) -> bool:
        """Hard-link a blob from another layout on the same filesystem: blobs are immutable and
        content-addressed, so sharing the inode is safe and costs no copy. False if not possible."""
        src = source.blob_path(desc.digest)
        try:
            if src.stat().st_size != desc.size:
                return False
            target = self.blob_path(desc.digest)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.link")
            os.link(src, tmp)
            os.replace(tmp, target)
            return True
        except OSError:
            return False

    def write_manifest(self, desc: Descriptor, data: bytes) -> None:
        self.write_blob(desc, data)

    def entries(self) -> list[dict[str, Any]]:
        return list(_read_index_json(self.root).get("manifests") or [])

    def _write_index(self, entries: list[dict[str, Any]]) -> None:
        index = {"schemaVersion": 2, "mediaType": mt.MEDIA_TYPE_OCI_INDEX, "manifests": entries}
        write_atomic(self.root / "index.json", gojson.dumps(index))

    def tag(self, desc: Descriptor) -> None:
        """Point the sink's tag at `desc`, keeping every other entry of index.json."""
        if not self.blob_path(desc.digest).exists():
            raise ImageError(f"cannot tag {desc.digest}: its blob was not written")
        annotations = dict(desc.annotations)
        if self.tag_name:
            annotations[mt.ANNOTATION_REF_NAME] = self.tag_name
        entry = desc.with_changes(annotations=annotations).to_json()
        kept = [
            e
            for e in self.entries()
            if not (self.tag_name and (e.get("annotations") or {}).get(mt.ANNOTATION_REF_NAME) == self.tag_name)
        ]
        self._write_index([*kept, entry])

    def add_entry(self, desc: Descriptor) -> None:
        """Add an untagged index.json entry (e.g. a SOCI v1 index with its artifactType), once."""
        entries = self.entries()
        if any(e.get("digest") == desc.digest for e in entries):
            return
        self._write_index([*entries, desc.to_json()])

    def remove_entries(self, digests: set[str]) -> None:
        self._write_index([e for e in self.entries() if e.get("digest") not in digests])

    def write_referrer(self, desc: Descriptor, data: bytes, subject: Descriptor) -> None:
        """A manifest that refers to `subject` (SOCI v1): stored and listed with its artifactType."""
        self.write_blob(desc, data)
        self.add_entry(
            Descriptor(
                media_type=desc.media_type,
                digest=desc.digest,
                size=desc.size,
                annotations=dict(desc.annotations),
                artifact_type=desc.artifact_type,
            )
        )

    def close(self) -> None:
        pass


def remove_blob(root: Path, digest: str) -> None:
    path = root / "blobs" / "sha256" / digest_hex(digest)
    if path.exists():
        path.unlink()


__all__ = ["LayoutSink", "LayoutSource", "remove_blob"]
