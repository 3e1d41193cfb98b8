"""Image archives: `oci-archive:` (a tar of an OCI image layout, as `docker buildx build --output
type=oci` writes it) and `docker-archive:` (`docker save` output).

Reading never extracts the archive: one pass over the tar headers gives each member's data
offset and size, and blobs are then read straight from the archive file through a bounded reader
(a fresh file handle per blob, so layers can be read in parallel, also from worker processes).
Symbolic and hard links between members (`docker save` links repeated layers, and Docker 25+
links `<id>/layer.tar` to `blobs/sha256/<hex>`) resolve to the member they point at.

A gzip-, bzip2- or xz-compressed archive has no random access, so it is first decompressed to a
temporary file (deleted by `close()`); plain tar archives are never copied.
"""

from __future__ import annotations

import bz2
import contextlib
import functools
import gzip
import hashlib
import io
import json
import lzma
import os
import posixpath
import re
import shutil
import tarfile
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from socikit.atomic import atomic_writer
from socikit.content.base import Closing, ImageSource
from socikit.content.layout import (
    LayoutSink,
    index_entries,
    parse_index_json,
    resolve_entry,
)
from socikit.content.reference import parse_docker_reference
from socikit.errors import DigestMismatchError, ImageError, ImageReferenceError
from socikit.oci import gojson
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor
from socikit.oci.digest import is_digest, sha256_digest

_CHUNK = 1 << 20
_MAX_LINK_HOPS = 16
_BLOB_NAME_RE = re.compile(r"^blobs/sha256/([0-9a-f]{64})$")
# First bytes of a compressed archive -> (name, opener) for the decompressing spool.
_COMPRESSED: tuple[tuple[bytes, str, Callable[[str], io.BufferedIOBase] | None], ...] = (
    (b"\x1f\x8b", "gzip", lambda p: gzip.open(p, "rb")),
    (b"BZh", "bzip2", lambda p: bz2.open(p, "rb")),
    (b"\xfd7zXZ\x00", "xz", lambda p: lzma.open(p, "rb")),
    (b"\x28\xb5\x2f\xfd", "zstd", None),
)
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


# --- reading members of a tar file -------------------------------------------------------------

class _BoundedReader(io.RawIOBase):
    """`size` bytes of a file starting at `offset`, through a handle of its own."""

    def __init__(self, path: str, offset: int, size: int) -> None:
        try:
            self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise ImageError(f"cannot read {path}: {exc.strerror or exc}") from None
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
            raise ImageError(f"{self._file.name} ends inside a member (truncated archive?)")
        self._left -= n
        return n

    def close(self) -> None:
        self._file.close()
        super().close()


def _open_member(path: str, offset: int, size: int) -> BinaryIO:
    return io.BufferedReader(_BoundedReader(path, offset, size), buffer_size=_CHUNK)


def _member_name(name: str) -> str:
    name = posixpath.normpath(name.lstrip("/"))
    return "" if name == "." else name


def _member_table(path: Path, display: Path) -> dict[str, tuple[int, int]]:
    """name -> (data offset, size) of every regular file in the tar, links resolved to their
    targets; names are normalized (no leading `./` or `/`)."""
    files: dict[str, tuple[int, int]] = {}
    links: dict[str, str] = {}
    file_size = path.stat().st_size
    try:
        with tarfile.open(path, "r:") as tar:
            for member in tar:
                name = _member_name(member.name)
                if member.isreg():
                    if member.offset_data + member.size > file_size:
                        raise ImageError(f"{display} is truncated: {member.name} ends past the end of the file")
                    files[name] = (member.offset_data, member.size)
                elif member.issym():
                    target = member.linkname
                    base = "" if target.startswith("/") else posixpath.dirname(name)
                    links[name] = _member_name(posixpath.join(base, target.lstrip("/")))
                elif member.islnk():
                    links[name] = _member_name(member.linkname)
    except (tarfile.TarError, EOFError) as exc:
        raise ImageError(f"{display} is not a readable tar archive ({exc})") from None
    except OSError as exc:
        raise ImageError(f"cannot read {display}: {exc.strerror or exc}") from None
    for name in links:
        target = name
        for _ in range(_MAX_LINK_HOPS):
            target = links.get(target, target)
            if target in files:
                files[name] = files[target]
                break
    return files


class _Archive:
    """The member table of an archive, and streams over its members."""

    def __init__(self, path: Path, kind: str) -> None:
        self.path = path
        self.kind = kind
        self.data_path = path  # the plain tar read for members (a spool for compressed archives)
        self._spool: str | None = None
        try:
            with open(path, "rb") as handle:
                magic = handle.read(6)
        except FileNotFoundError:
            raise ImageError(f"{kind} {path} does not exist") from None
        except IsADirectoryError:
            hint = " (an OCI layout directory is read with oci:DIR)" if kind == "oci-archive" else ""
            raise ImageError(f"{kind} {path} is a directory, not a tar file{hint}") from None
        except OSError as exc:
            raise ImageError(f"cannot read {kind} {path}: {exc.strerror or exc}") from None
        for prefix, codec, opener in _COMPRESSED:
            if magic.startswith(prefix):
                if opener is None:
                    raise ImageError(f"{path} is {codec}-compressed: decompress it to a plain tar first")
                self._decompress(codec, opener)
                break
        try:
            self.members = _member_table(self.data_path, path)
        except BaseException:
            self.close()
            raise

    def _decompress(self, codec: str, opener: Callable[[str], io.BufferedIOBase]) -> None:
        fd, self._spool = tempfile.mkstemp(prefix="socikit-archive-", suffix=".tar")
        self.data_path = Path(self._spool)
        try:
            with os.fdopen(fd, "wb") as out, opener(str(self.path)) as stream:
                shutil.copyfileobj(stream, out, _CHUNK)
        except (OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
            self.close()
            raise ImageError(f"{self.path}: corrupt {codec} data ({exc})") from None
        except BaseException:
            self.close()
            raise

    def has(self, name: str) -> bool:
        return name in self.members

    def open(self, name: str) -> BinaryIO:
        try:
            offset, size = self.members[name]
        except KeyError:
            raise ImageError(f"{name} is missing from the {self.kind} {self.path}") from None
        return _open_member(str(self.data_path), offset, size)

    def read(self, name: str) -> bytes:
        with self.open(name) as stream:
            return stream.read()

    def size(self, name: str) -> int:
        return self.members[name][1]

    def opener(self, names: dict[str, str]) -> Callable[[Descriptor], BinaryIO]:
        """A picklable `desc -> stream` for worker processes (`names`: digest -> member)."""
        return functools.partial(_open_named_member, str(self.data_path), dict(self.members), dict(names))

    def close(self) -> None:
        if self._spool is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._spool)
            self._spool = None


def _open_named_member(path: str, members: dict[str, tuple[int, int]], names: dict[str, str],
                       desc: Descriptor) -> BinaryIO:
    name = names.get(desc.digest) or _blob_member(desc.digest)
    if name not in members:
        raise ImageError(f"blob {desc.digest} is missing from the archive {path}")
    offset, size = members[name]
    return _open_member(path, offset, size)


def _blob_member(digest: str) -> str:
    return "blobs/" + digest.replace(":", "/", 1)


def _verified(data: bytes, desc: Descriptor, where: Path) -> bytes:
    if len(data) != desc.size:
        raise DigestMismatchError(
            f"blob {desc.digest} in {where} is {len(data)} bytes, its descriptor says {desc.size}"
        )
    if sha256_digest(data) != desc.digest:
        raise DigestMismatchError(f"blob {desc.digest} in {where} has another digest ({sha256_digest(data)})")
    return data


# --- oci-archive ----------------------------------------------------------------------------------

class OciArchiveSource(Closing):
    """`oci-archive:FILE[:TAG|@DIGEST]` as an ImageSource (the same image selection as a layout)."""

    def __init__(self, path: str | os.PathLike[str], *, tag: str = "", digest: str = "") -> None:
        self.path = Path(path)
        self.tag = tag
        self.digest = digest
        self._archive = _Archive(self.path, "oci-archive")
        if not self._archive.has("index.json"):
            self._archive.close()
            raise ImageError(f"{self.path} is not an OCI archive (no index.json in it)")
        self.blob_opener = self._archive.opener({})

    def __repr__(self) -> str:
        return f"OciArchiveSource({str(self.path)!r}, tag={self.tag!r})"

    def entries(self) -> list[Descriptor]:
        return index_entries(parse_index_json(self._archive.read("index.json"), str(self.path)), str(self.path))

    def resolve(self) -> Descriptor:
        def read(digest: str) -> bytes | None:
            name = _blob_member(digest)
            return self._archive.read(name) if is_digest(digest) and self._archive.has(name) else None

        return resolve_entry(self.entries(), tag=self.tag, digest=self.digest, where=str(self.path),
                             hint=f"oci-archive:{self.path}", read_blob=read)

    def has_blob(self, desc: Descriptor) -> bool:
        name = _blob_member(desc.digest)
        return self._archive.has(name) and self._archive.size(name) == desc.size

    def _member(self, desc: Descriptor) -> str:
        name = _blob_member(desc.digest)
        if not is_digest(desc.digest) or not self._archive.has(name):
            raise ImageError(f"blob {desc.digest} is missing from the archive {self.path}")
        return name

    def read_blob(self, desc: Descriptor) -> bytes:
        return _verified(self._archive.read(self._member(desc)), desc, self.path)

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        return self._archive.open(self._member(desc))

    def close(self) -> None:
        self._archive.close()


_DIR_MODE = 0o755
_FILE_MODE = 0o644


class OciArchiveSink(Closing):
    """`oci-archive:FILE[:TAG]` as a destination.

    New content goes into an OCI layout in a temp directory next to FILE, made at the first
    write; `tag()` then writes a new tar (oci-layout, index.json, the blobs) beside FILE and
    renames it over FILE. When FILE already is an OCI archive its index.json entries (other tags)
    are kept and its blobs are streamed from it into the new tar, never extracted. Nothing is
    written to FILE before `tag()`; `close()` removes the temp directory, and before `tag()` also
    the parent directories this sink had to create."""

    copies_while_indexing = False  # as its staging layout

    def __init__(self, path: str | os.PathLike[str], *, tag: str = "latest") -> None:
        self.path = Path(path)
        self.tag_name = tag
        self._old: _Archive | None = None
        self._tmp: Path | None = None
        self._layout: LayoutSink | None = None
        self._created_dirs: list[Path] = []
        self._written = False
        self._lock = threading.Lock()  # blobs are copied on several threads
        try:
            exists = self.path.exists()
        except OSError as exc:
            raise ImageError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        if exists:
            self._old = _Archive(self.path, "oci-archive")
            if not self._old.has("index.json"):
                self._old.close()
                raise ImageError(f"{self.path} exists and is not an OCI archive: refusing to overwrite it")

    def __repr__(self) -> str:
        return f"OciArchiveSink({str(self.path)!r})"

    def _staging(self) -> LayoutSink:
        """The temp layout beside FILE (created on first use, with FILE's missing parents)."""
        with self._lock:
            if self._layout is not None:
                return self._layout
            try:
                missing = []
                parent = self.path.parent
                while not parent.exists():
                    missing.append(parent)
                    parent = parent.parent
                for directory in reversed(missing):
                    with contextlib.suppress(FileExistsError):
                        directory.mkdir()
                        self._created_dirs.append(directory)
                self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".layout",
                                                  dir=self.path.parent))
                if self._old is not None:
                    (self._tmp / "index.json").write_bytes(self._old.read("index.json"))
            except OSError as exc:
                raise ImageError(f"cannot write next to {self.path}: {exc.strerror or exc}") from None
            self._layout = LayoutSink(self._tmp, tag=self.tag_name)
            return self._layout

    def _in_old(self, desc: Descriptor) -> bool:
        if self._old is None or not is_digest(desc.digest):
            return False
        name = _blob_member(desc.digest)
        return self._old.has(name) and self._old.size(name) == desc.size

    def has_blob(self, desc: Descriptor) -> bool:
        return (self._layout is not None and self._layout.has_blob(desc)) or self._in_old(desc)

    def write_blob(self, desc: Descriptor, data: bytes) -> None:
        # Small blobs always land in the new layout so `tag` and `add_entry` find them there.
        self._staging().write_blob(desc, data)

    def copy_blob(self, desc: Descriptor, source: ImageSource, *, verified: bool = False) -> None:
        if not self._in_old(desc):
            self._staging().copy_blob(desc, source, verified=verified)

    def stream_uploader(self, source: ImageSource) -> Callable[[Descriptor], Any] | None:
        """Layers staged into the temp layout from the streams that index them (see
        `LayoutSink.stream_uploader`): a layer is read from the source once."""
        return self._staging().stream_uploader(source)

    def write_manifest(self, desc: Descriptor, data: bytes) -> None:
        self._staging().write_manifest(desc, data)

    def write_referrer(self, desc: Descriptor, data: bytes, subject: Descriptor) -> None:
        self._staging().write_referrer(desc, data, subject)

    def add_entry(self, desc: Descriptor) -> None:
        self._staging().add_entry(desc)

    def tag(self, desc: Descriptor) -> None:
        self._staging().tag(desc)
        self._write_archive()
        self._written = True

    def _write_archive(self) -> None:
        assert self._tmp is not None
        new_blobs = {p.name: p for p in (self._tmp / "blobs" / "sha256").iterdir() if p.is_file()
                     and not p.name.startswith(".")}
        old_blobs = {}
        if self._old is not None:
            for name in self._old.members:
                match = _BLOB_NAME_RE.match(name)
                if match and match[1] not in new_blobs:
                    old_blobs[match[1]] = name
        mtime = int(time.time())
        try:
            with atomic_writer(self.path, make_parents=False) as out, \
                    tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for name in ("blobs", "blobs/sha256"):
                    info = tarfile.TarInfo(name)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, _DIR_MODE, mtime
                    tar.addfile(info)
                for name in ("oci-layout", "index.json"):
                    _add_file(tar, name, self._tmp / name, mtime)
                for hex_name in sorted({*new_blobs, *old_blobs}):
                    arcname = f"blobs/sha256/{hex_name}"
                    if hex_name in new_blobs:
                        _add_file(tar, arcname, new_blobs[hex_name], mtime)
                    else:
                        assert self._old is not None
                        info = _file_info(arcname, self._old.size(old_blobs[hex_name]), mtime)
                        with self._old.open(old_blobs[hex_name]) as stream:
                            tar.addfile(info, stream)
        except OSError as exc:
            raise ImageError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def close(self) -> None:
        if self._old is not None:
            self._old.close()
            self._old = None
        if self._layout is not None:
            self._layout.close()
            self._layout = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        if not self._written:
            for directory in reversed(self._created_dirs):
                with contextlib.suppress(OSError):
                    directory.rmdir()
        self._created_dirs = []


def _file_info(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, _FILE_MODE, mtime
    return info


def _add_file(tar: tarfile.TarFile, name: str, path: Path, mtime: int) -> None:
    with open(path, "rb") as handle:
        tar.addfile(_file_info(name, os.fstat(handle.fileno()).st_size, mtime), handle)


# --- docker-archive -------------------------------------------------------------------------------

def _layer_media_type(head: bytes) -> str:
    if head.startswith(b"\x1f\x8b"):
        return mt.MEDIA_TYPE_DOCKER_LAYER_GZIP
    if head.startswith(_ZSTD_MAGIC):
        # Docker's schema2 has no zstd layer type; containerd-backed Docker Engines save
        # zstd layers as stored, and the OCI type is what every consumer recognizes.
        return mt.MEDIA_TYPE_OCI_LAYER_ZSTD
    return mt.MEDIA_TYPE_DOCKER_LAYER


def _normalized_tag(text: str) -> tuple[str, str, str] | None:
    try:
        ref = parse_docker_reference(text)
    except ImageReferenceError:
        return None
    return ref.host, ref.repository, ref.tag


class DockerArchiveSource(Closing):
    """`docker-archive:FILE[:NAME:TAG]`: `docker save` output, legacy (`<id>/layer.tar`,
    `<hex>.json`) or OCI-style (`blobs/sha256/<hex>`, Docker 25+), presented as a Docker schema2
    manifest synthesized from manifest.json: the config as stored, then each layer file with
    `...rootfs.diff.tar` (plain tar) or `...rootfs.diff.tar.gzip` (gzip magic) as media type.

    A layer's digest is taken from its `blobs/sha256/<hex>` name, or, for a plain tar, from the
    config's `rootfs.diff_ids` (what `docker save` stores is exactly that diff); otherwise the
    file is hashed. Readers verify digests as they read, so a wrong claim cannot go unnoticed."""

    def __init__(self, path: str | os.PathLike[str], *, ref: str = "") -> None:
        self.path = Path(path)
        self._archive = _Archive(self.path, "docker-archive")
        try:
            self._load(ref)
        except BaseException:
            self._archive.close()
            raise

    def __repr__(self) -> str:
        return f"DockerArchiveSource({str(self.path)!r})"

    def _load(self, ref: str) -> None:
        if not self._archive.has("manifest.json"):
            raise ImageError(f"{self.path} is not a docker-archive (no manifest.json in it)")
        try:
            entries = json.loads(self._archive.read("manifest.json"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ImageError(f"{self.path}: manifest.json is not valid JSON ({exc})") from None
        if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
            raise ImageError(f"{self.path}: manifest.json lists no image")
        entry = self._pick(entries, ref)
        config_name = entry.get("Config")
        layer_names = entry.get("Layers") or []
        if not isinstance(config_name, str) or not isinstance(layer_names, list):
            raise ImageError(f"{self.path}: manifest.json entry lacks Config or Layers")
        self._names: dict[str, str] = {}
        config_bytes = self._archive.read(_member_name(config_name))
        config = Descriptor(media_type=mt.MEDIA_TYPE_DOCKER_CONFIG, digest=sha256_digest(config_bytes),
                            size=len(config_bytes))
        self._names[config.digest] = _member_name(config_name)
        diff_ids = _diff_ids(config_bytes)
        layers = [
            self._layer(str(name), diff_ids[i] if len(diff_ids) == len(layer_names) else "")
            for i, name in enumerate(layer_names)
        ]
        manifest = {
            "schemaVersion": 2,
            "mediaType": mt.MEDIA_TYPE_DOCKER_MANIFEST,
            "config": config.to_json(),
            "layers": [layer.to_json() for layer in layers],
        }
        self._manifest = gojson.dumps(manifest)
        self._manifest_desc = Descriptor(media_type=mt.MEDIA_TYPE_DOCKER_MANIFEST,
                                         digest=sha256_digest(self._manifest), size=len(self._manifest))
        self.repo_tags: tuple[str, ...] = tuple(t for t in entry.get("RepoTags") or [] if isinstance(t, str))
        self.blob_opener = self._archive.opener(self._names)

    def _pick(self, entries: list[dict[str, Any]], ref: str) -> dict[str, Any]:
        if ref:
            wanted = _normalized_tag(ref)
            if wanted is None:
                raise ImageReferenceError(f"invalid image name {ref!r} for docker-archive:{self.path}")
            for entry in entries:
                tags = [t for t in entry.get("RepoTags") or [] if isinstance(t, str)]
                if any(_normalized_tag(t) == wanted for t in tags):
                    return entry
            present = sorted(t for e in entries for t in (e.get("RepoTags") or []) if isinstance(t, str))
            raise ImageError(f"{ref!r} is not in {self.path}; it holds: {', '.join(present) or 'untagged images'}")
        if len(entries) > 1:
            present = sorted(t for e in entries for t in (e.get("RepoTags") or []) if isinstance(t, str))
            listed = f" ({', '.join(present)})" if present else ""
            raise ImageError(
                f"{self.path} holds {len(entries)} images{listed}: name one with docker-archive:{self.path}:NAME:TAG"
            )
        return entries[0]

    def _layer(self, raw_name: str, diff_id: str) -> Descriptor:
        name = _member_name(raw_name)
        if not self._archive.has(name):
            raise ImageError(f"layer {raw_name} is missing from {self.path}")
        size = self._archive.size(name)
        with self._archive.open(name) as stream:
            head = stream.read(4)
            media_type = _layer_media_type(head)
            named = _BLOB_NAME_RE.match(name)
            if named:
                digest = "sha256:" + named[1]
            elif media_type == mt.MEDIA_TYPE_DOCKER_LAYER and is_digest(diff_id):
                digest = diff_id
            else:
                hasher = hashlib.sha256(head)
                while chunk := stream.read(_CHUNK):
                    hasher.update(chunk)
                digest = "sha256:" + hasher.hexdigest()
        self._names.setdefault(digest, name)
        return Descriptor(media_type=media_type, digest=digest, size=size)

    def resolve(self) -> Descriptor:
        return self._manifest_desc

    def has_blob(self, desc: Descriptor) -> bool:
        return desc.digest == self._manifest_desc.digest or desc.digest in self._names

    def read_blob(self, desc: Descriptor) -> bytes:
        if desc.digest == self._manifest_desc.digest:
            return _verified(self._manifest, desc, self.path)
        with self.open_blob(desc) as stream:
            return _verified(stream.read(), desc, self.path)

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        if desc.digest == self._manifest_desc.digest:
            return io.BytesIO(self._manifest)
        name = self._names.get(desc.digest)
        if name is None:
            raise ImageError(f"blob {desc.digest} is not in {self.path}")
        return self._archive.open(name)

    def close(self) -> None:
        self._archive.close()


def _diff_ids(config: bytes) -> list[str]:
    """`rootfs.diff_ids` of an image config ([] when absent or malformed)."""
    try:
        ids = json.loads(config).get("rootfs", {}).get("diff_ids") or []
    except (ValueError, UnicodeDecodeError, AttributeError):
        return []
    return [i if isinstance(i, str) else "" for i in ids] if isinstance(ids, list) else []


__all__ = ["DockerArchiveSource", "OciArchiveSink", "OciArchiveSource"]
