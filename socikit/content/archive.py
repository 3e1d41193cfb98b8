"""Image archives: `oci-archive:` (a tar of an OCI image layout, as `docker buildx build --output
type=oci` writes it) and `docker-archive:` (`docker save` output).

Reading never extracts the archive: the tar's member table gives each blob's data offset, and
blobs are read straight from the archive file through a bounded reader (a fresh file handle per
blob, so layers can be read in parallel, also from worker processes).
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

from socikit.atomic import atomic_writer
from socikit.content.base import ImageSource
from socikit.content.layout import LayoutSink
from socikit.errors import DigestMismatchError, ImageError
from socikit.oci import gojson
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor
from socikit.oci.digest import sha256_digest


class _BoundedReader(io.RawIOBase):
    """`size` bytes of a file starting at `offset`."""

    def __init__(self, path: str, offset: int, size: int) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._file.seek(offset)
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._left <= 0:
            return 0
        view = memoryview(buffer).cast("B")[: self._left]
        n = self._file.readinto(view)
        if not n:
            raise ImageError("archive ends inside a blob (truncated archive?)")
        self._left -= n
        return n

    def close(self) -> None:
        self._file.close()
        super().close()


def _open_member(path: str, offset: int, size: int, desc: Descriptor | None = None) -> BinaryIO:
    return io.BufferedReader(_BoundedReader(path, offset, size), buffer_size=1 << 20)


def _member_table(path: Path) -> dict[str, tuple[int, int]]:
    """name -> (data offset, size) of every regular file in the tar (names without a leading ./)."""
    try:
        with tarfile.open(path, "r:") as tar:
            return {
                m.name.removeprefix("./"): (m.offset_data, m.size) for m in tar.getmembers() if m.isreg()
            }
    except FileNotFoundError:
        raise ImageError(f"archive {path} does not exist") from None
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ImageError(f"cannot read archive {path}: {exc}") from None


class _ArchiveBlobs:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.members = _member_table(path)

    def member_for(self, digest: str) -> tuple[int, int]:
        name = "blobs/" + digest.replace(":", "/", 1)
        try:
            return self.members[name]
        except KeyError:
            raise ImageError(f"blob {digest} is missing from the archive {self.path}") from None

    def read(self, name: str) -> bytes:
        if name not in self.members:
            raise ImageError(f"{name} is missing from the archive {self.path}")
        offset, size = self.members[name]
        with _open_member(str(self.path), offset, size) as stream:
            return stream.read()


class OciArchiveSource:
    """`oci-archive:FILE[:TAG]`."""

    def __init__(self, path: str | os.PathLike[str], *, tag: str = "") -> None:
        self.path = Path(path)
        self.tag = tag
        self._blobs = _ArchiveBlobs(self.path)
        if "index.json" not in self._blobs.members:
            raise ImageError(f"{self.path} is not an OCI archive (no index.json)")
        self.blob_opener = functools.partial(_open_archive_blob, str(self.path), self._blobs.members)

    def resolve(self) -> Descriptor:
        index = json.loads(self._blobs.read("index.json"))
        entries = [Descriptor.from_json(m) for m in index.get("manifests") or []]
        if self.tag:
            for entry in entries:
                if entry.annotations.get(mt.ANNOTATION_REF_NAME) == self.tag:
                    return entry
            tags = sorted(e.annotations.get(mt.ANNOTATION_REF_NAME, "") for e in entries) or ["none"]
            raise ImageError(f"tag {self.tag!r} is not in {self.path}; tags present: {', '.join(tags)}")
        if len(entries) == 1:
            return entries[0]
        raise ImageError(f"{self.path} holds {len(entries)} images: name one with oci-archive:{self.path}:TAG")

    def read_blob(self, desc: Descriptor) -> bytes:
        offset, size = self._blobs.member_for(desc.digest)
        with _open_member(str(self.path), offset, size) as stream:
            data = stream.read()
        if len(data) != desc.size or sha256_digest(data) != desc.digest:
            raise DigestMismatchError(f"blob {desc.digest} in {self.path} does not match its digest or size")
        return data

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        offset, size = self._blobs.member_for(desc.digest)
        return _open_member(str(self.path), offset, size)

    def close(self) -> None:
        pass


def _open_archive_blob(path: str, members: dict[str, tuple[int, int]], desc: Descriptor) -> BinaryIO:
    offset, size = members["blobs/" + desc.digest.replace(":", "/", 1)]
    return _open_member(path, offset, size)


def _open_by_name(path: str, members: dict[str, tuple[int, int]], names: dict[str, str],
                  desc: Descriptor) -> BinaryIO:
    offset, size = members[names[desc.digest]]
    return _open_member(path, offset, size)


class OciArchiveSink:
    """`oci-archive:FILE[:TAG]` as a destination: a layout is assembled in a temp directory next to
    FILE (starting from FILE's contents, so other tags survive) and tarred into place atomically
    when `tag()` is called."""

    def __init__(self, path: str | os.PathLike[str], *, tag: str = "latest") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", dir=self.path.parent))
        if self.path.exists():
            try:
                with tarfile.open(self.path, "r:") as tar:
                    tar.extractall(self._tmp, filter="data")
            except (tarfile.TarError, OSError) as exc:
                shutil.rmtree(self._tmp, ignore_errors=True)
                raise ImageError(f"cannot read the existing archive {self.path}: {exc}") from None
        self._layout = LayoutSink(self._tmp, tag=tag)

    def has_blob(self, desc: Descriptor) -> bool:
        return self._layout.has_blob(desc)

    def write_blob(self, desc: Descriptor, data: bytes) -> None:
        self._layout.write_blob(desc, data)

    def copy_blob(self, desc: Descriptor, source: ImageSource) -> None:
        self._layout.copy_blob(desc, source)

    def write_manifest(self, desc: Descriptor, data: bytes) -> None:
        self._layout.write_manifest(desc, data)

    def write_referrer(self, desc: Descriptor, data: bytes, subject: Descriptor) -> None:
        self._layout.write_referrer(desc, data, subject)

    def tag(self, desc: Descriptor) -> None:
        self._layout.tag(desc)
        with atomic_writer(self.path) as out, tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name in ("oci-layout", "index.json"):
                tar.add(self._tmp / name, arcname=name)
            for blob in sorted((self._tmp / "blobs").rglob("*")):
                if blob.is_file():
                    tar.add(blob, arcname=str(blob.relative_to(self._tmp)))

    def close(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)


class DockerArchiveSource:
    """`docker-archive:FILE[:REF]`: `docker save` output, legacy (`<id>/layer.tar`) or OCI-style
    (`blobs/sha256/…`, Docker 25+), presented as a Docker schema2 manifest."""

    def __init__(self, path: str | os.PathLike[str], *, ref: str = "") -> None:
        self.path = Path(path)
        self._blobs = _ArchiveBlobs(self.path)
        try:
            entries = json.loads(self._blobs.read("manifest.json"))
        except ImageError:
            raise ImageError(f"{self.path} is not a docker-archive (no manifest.json)") from None
        except ValueError as exc:
            raise ImageError(f"{self.path}: manifest.json is not valid JSON: {exc}") from None
        entry = self._pick(entries, ref)
        self._names: dict[str, str] = {}
        config_bytes = self._blobs.read(entry["Config"])
        config = Descriptor(media_type=mt.MEDIA_TYPE_DOCKER_CONFIG, digest=sha256_digest(config_bytes),
                            size=len(config_bytes))
        self._names[config.digest] = entry["Config"]
        layers = []
        for name in entry.get("Layers") or []:
            layers.append(self._layer_descriptor(name))
        manifest = {
            "schemaVersion": 2,
            "mediaType": mt.MEDIA_TYPE_DOCKER_MANIFEST,
            "config": config.to_json(),
            "layers": [layer.to_json() for layer in layers],
        }
        self._manifest = gojson.dumps(manifest)
        self._manifest_desc = Descriptor(media_type=mt.MEDIA_TYPE_DOCKER_MANIFEST,
                                         digest=sha256_digest(self._manifest), size=len(self._manifest))
        self.blob_opener = functools.partial(_open_by_name, str(self.path), self._blobs.members, dict(self._names))

    def _pick(self, entries: Any, ref: str) -> dict[str, Any]:
        if not isinstance(entries, list) or not entries:
            raise ImageError(f"{self.path}: manifest.json lists no image")
        if ref:
            for entry in entries:
                tags = entry.get("RepoTags") or []
                if ref in tags or any(t.endswith("/" + ref) for t in tags):
                    return dict(entry)
            present = sorted(t for e in entries for t in (e.get("RepoTags") or []))
            raise ImageError(f"{ref!r} is not in {self.path}; it holds: {', '.join(present) or 'untagged images'}")
        if len(entries) > 1:
            raise ImageError(f"{self.path} holds {len(entries)} images: name one with docker-archive:{self.path}:REF")
        return dict(entries[0])

    def _layer_descriptor(self, name: str) -> Descriptor:
        if name not in self._blobs.members:
            raise ImageError(f"layer {name} is missing from {self.path}")
        offset, size = self._blobs.members[name]
        digest = hashlib.sha256()
        with _open_member(str(self.path), offset, size) as stream:
            head = stream.read(2)
            digest.update(head)
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
        media_type = mt.MEDIA_TYPE_DOCKER_LAYER_GZIP if head == b"\x1f\x8b" else mt.MEDIA_TYPE_DOCKER_LAYER
        desc = Descriptor(media_type=media_type, digest="sha256:" + digest.hexdigest(), size=size)
        self._names[desc.digest] = name
        return desc

    def resolve(self) -> Descriptor:
        return self._manifest_desc

    def read_blob(self, desc: Descriptor) -> bytes:
        if desc.digest == self._manifest_desc.digest:
            return self._manifest
        with self.open_blob(desc) as stream:
            data = stream.read()
        if sha256_digest(data) != desc.digest:
            raise DigestMismatchError(f"blob {desc.digest} in {self.path} does not match its digest")
        return data

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        name = self._names.get(desc.digest)
        if name is None:
            raise ImageError(f"blob {desc.digest} is not in {self.path}")
        offset, size = self._blobs.members[name]
        return _open_member(str(self.path), offset, size)

    def close(self) -> None:
        pass


__all__ = ["DockerArchiveSource", "OciArchiveSink", "OciArchiveSource"]
