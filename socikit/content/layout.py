"""OCI image layout directories (image-spec `image-layout.md`) as image source and sink.

Reading never modifies the layout. Writing is a transaction that `tag` commits:

* Nothing is created before the first write; the directory, `oci-layout` and `blobs/sha256/` are
  then made under an exclusive `flock` on the parent directory, so writers racing to create one
  new layout all find a whole one.
* A blob goes to a temp file in its final directory, is verified against its digest and size,
  then renamed into place. `index.json` changes (the tag, SOCI v1 entries) are held back and
  applied by `tag` in one read-modify-write under an exclusive `flock` on the layout directory,
  replacing `index.json` atomically and keeping every entry and top-level field it had except
  the entry being retagged, so two socikit writers never drop each other's entries.
* A sink closed, or left on an exception, before `tag` removes every file and directory it
  created (unless another writer is using the layout at that moment: writers hold a shared
  `flock` on `blobs/` while they write), so a failed or interrupted run leaves the destination
  exactly as it was.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import json
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Self

from socikit.atomic import NEW_FILE_MODE, atomic_writer, write_atomic
from socikit.content.base import Closing, ImageSource
from socikit.errors import DigestMismatchError, FormatError, ImageError, UnreadableInputError
from socikit.oci import gojson
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor
from socikit.oci.digest import digest_hex, is_digest, sha256_digest

OCI_LAYOUT_FILE = b'{"imageLayoutVersion":"1.0.0"}'
_COPY_CHUNK = 1 << 20


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


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


def _media_type_of(data: bytes) -> str:
    try:
        value = json.loads(data).get("mediaType")
    except (ValueError, UnicodeDecodeError, AttributeError):
        return ""
    return value if isinstance(value, str) else ""


class LayoutSource(Closing):
    """`oci:DIR[:TAG|@DIGEST]` as an ImageSource. Never writes to DIR."""

    def __init__(self, root: str | os.PathLike[str], *, tag: str = "", digest: str = "") -> None:
        self.root = Path(root)
        self.tag = tag
        self.digest = digest
        try:
            if not self.root.is_dir():
                raise ImageError(f"{self.root} is not an OCI image layout (no such directory)")
            if not (self.root / "oci-layout").exists() and not (self.root / "index.json").exists():
                raise ImageError(f"{self.root} is not an OCI image layout (no oci-layout or index.json)")
        except OSError as exc:
            raise UnreadableInputError(f"cannot read the OCI layout {self.root}: {_why(exc)}") from None
        # A picklable `desc -> stream` callable that works in another process.
        self.blob_opener: Callable[[Descriptor], BinaryIO] | None = functools.partial(
            _open_layout_blob, str(self.root)
        )

    def __repr__(self) -> str:
        return f"LayoutSource({str(self.root)!r}, tag={self.tag!r}, digest={self.digest!r})"

    def _index(self) -> dict[str, Any]:
        try:
            data = (self.root / "index.json").read_bytes()
        except FileNotFoundError:
            raise ImageError(f"{self.root} is not an OCI image layout (no index.json)") from None
        except OSError as exc:
            raise UnreadableInputError(f"cannot read {self.root / 'index.json'}: {_why(exc)}") from None
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
            try:
                return path.read_bytes() if path.is_file() else None
            except OSError as exc:
                raise UnreadableInputError(f"cannot read blob {digest} in {self.root}: {_why(exc)}") from None

        return resolve_entry(self.entries(), tag=self.tag, digest=self.digest, where=f"the layout {self.root}",
                             hint=f"oci:{self.root}", read_blob=read)

    def blob_path(self, digest: str) -> Path:
        return _blob_path(self.root, digest)

    def has_blob(self, desc: Descriptor) -> bool:
        return _has_blob(self.root, desc)

    def read_blob(self, desc: Descriptor) -> bytes:
        path = _blob_path(self.root, desc.digest)
        try:
            data = path.read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            raise ImageError(f"blob {desc.digest} is missing from the layout {self.root}") from None
        except OSError as exc:
            raise UnreadableInputError(f"cannot read blob {desc.digest} in {self.root}: {_why(exc)}") from None
        if len(data) != desc.size:
            raise DigestMismatchError(
                f"blob {desc.digest} in {self.root} is {len(data)} bytes, its descriptor says {desc.size}"
            )
        if sha256_digest(data) != desc.digest:
            raise DigestMismatchError(f"blob {desc.digest} in {self.root} has another digest ({sha256_digest(data)})")
        return data

    def read_manifest(self, digest: str) -> tuple[bytes, Descriptor]:
        """A manifest or index known only by digest: its size from the file, its media type from
        its own `mediaType` (an OCI manifest when it names none)."""
        path = _blob_path(self.root, digest)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise ImageError(f"{digest} is not in the layout {self.root}") from None
        except OSError as exc:
            raise UnreadableInputError(f"cannot read blob {digest} in {self.root}: {_why(exc)}") from None
        data = self.read_blob(Descriptor(mt.MEDIA_TYPE_OCI_MANIFEST, digest, size))
        return data, Descriptor(_media_type_of(data) or mt.MEDIA_TYPE_OCI_MANIFEST, digest, size)

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        try:
            return open(_blob_path(self.root, desc.digest), "rb")
        except (FileNotFoundError, IsADirectoryError):
            raise ImageError(f"blob {desc.digest} is missing from the layout {self.root}") from None
        except OSError as exc:
            raise UnreadableInputError(f"cannot read blob {desc.digest} in {self.root}: {_why(exc)}") from None


def _has_blob(root: Path, desc: Descriptor) -> bool:
    path = _blob_path(root, desc.digest)
    try:
        return path.is_file() and path.stat().st_size == desc.size
    except OSError:
        return False


# --- locks -----------------------------------------------------------------------------------------

@contextlib.contextmanager
def _flocked(directory: Path, operation: int = fcntl.LOCK_EX) -> Iterator[int]:
    """Hold `flock(operation)` on a directory for the block (closing the descriptor releases it)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, operation)
        yield fd
    finally:
        os.close(fd)


# --- sink ----------------------------------------------------------------------------------------

_STAGE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC


def _staged_path(root: Path, token: str, digest: str) -> Path:
    return _blob_path(root, digest).with_name(f".{digest_hex(digest)}.staged-{token}")


class _StagedBlob:
    """A layer's bytes written into the layout as the builder reads them (in a worker process),
    under a name only this conversion's sink knows. `finish` leaves the file in place and says
    the blob is not in the layout yet: the sink's `copy_blob` renames it into place in the main
    process, where its undo can see it; the builder checked the digest of every byte it read
    before `finish` is called. Unused staged files are removed by the sink."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd = os.open(path, _STAGE_FLAGS, NEW_FILE_MODE)

    def write(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            view = view[os.write(self._fd, view):]

    def finish(self) -> bool:
        try:
            os.fsync(self._fd)
        finally:
            os.close(self._fd)
            self._fd = -1
        return False

    def abort(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        with contextlib.suppress(OSError):
            self._path.unlink()


def _stage_blob(root: Path, token: str, desc: Descriptor) -> _StagedBlob:
    try:
        return _StagedBlob(_staged_path(root, token, desc.digest))
    except OSError as exc:
        raise ImageError(f"cannot stage blob {desc.digest} in {root}: {_why(exc)}") from None


class LayoutSink:
    """`oci:DIR[:TAG]` as an ImageSink. DIR is created at the first write if missing; an existing
    directory must be empty or already an OCI layout (socikit never scatters blobs into an
    unrelated directory). See the module docstring for the transaction: `tag` commits, closing
    before it (or leaving a `with` block on an exception) undoes every write."""

    copies_while_indexing = False  # local copies; layers just indexed are linked unhashed afterwards

    def __init__(self, root: str | os.PathLike[str], *, tag: str = "") -> None:
        self.root = Path(root)
        self.tag_name = tag
        self._created: list[Path] = []  # files and directories made since the last commit, in order
        self._pending: list[Callable[[list[dict[str, Any]]], list[dict[str, Any]] | None]] = []
        self._presence: int | None = None  # shared flock on blobs/ while this sink writes
        self._ready = False
        self._lock = threading.Lock()  # blobs are copied on several threads
        self._stage_token = secrets.token_hex(8)  # names this sink's staged layers (see _StagedBlob)
        self._staging = False  # a stream_uploader was handed out: staged files may exist
        try:
            if self.root.parent.is_dir():
                with _flocked(self.root.parent):
                    self._check()
            else:
                self._check()
        except OSError as exc:
            raise ImageError(f"cannot use {self.root} as an OCI layout: {_why(exc)}") from None

    def __repr__(self) -> str:
        return f"LayoutSink({str(self.root)!r}, tag={self.tag_name!r})"

    def _check(self) -> None:
        """Fail early (before any layer is read) on a destination that cannot take a layout."""
        if not self.root.exists():
            return
        if not self.root.is_dir():
            raise ImageError(f"{self.root} exists and is not a directory: cannot write an OCI layout there")
        is_layout = (self.root / "oci-layout").exists() or (self.root / "index.json").exists()
        if not is_layout and any(self.root.iterdir()):
            raise ImageError(f"{self.root} is a non-empty directory that is not an OCI image layout")
        if (self.root / "index.json").exists():
            self._read_index()  # fail now, not after the layers were copied, if it is corrupt

    # creation and undo

    def _mkdir(self, path: Path) -> None:
        try:
            path.mkdir()
        except FileExistsError:
            return
        self._created.append(path)

    def _ensure_ready(self) -> None:
        """Create the layout (directory, oci-layout, blobs/sha256) if needed, under the parent's
        lock, and join it as a writer. Runs once, before the first write."""
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            try:
                missing = []
                parent = self.root.parent
                while not parent.exists():
                    missing.append(parent)
                    parent = parent.parent
                for directory in reversed(missing):
                    self._mkdir(directory)
                with _flocked(self.root.parent):
                    self._check()
                    self._mkdir(self.root)
                    self._mkdir(self.root / "blobs")
                    self._mkdir(self.root / "blobs" / "sha256")
                    if not (self.root / "oci-layout").exists():
                        write_atomic(self.root / "oci-layout", OCI_LAYOUT_FILE)
                        self._created.append(self.root / "oci-layout")
                    # Lock the blobs/ that exists now (one joined earlier may have been undone since).
                    presence = os.open(self.root / "blobs", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                    fcntl.flock(presence, fcntl.LOCK_SH)
                    if self._presence is not None:
                        os.close(self._presence)
                    self._presence = presence
            except OSError as exc:
                raise ImageError(f"cannot create the OCI layout {self.root}: {_why(exc)}") from None
            self._ready = True

    def _join(self) -> None:
        """Take the shared writer lock on an existing layout before relying on what is in it (a
        blob found here must not be undone by a writer that fails meanwhile). Waits while a
        failed writer undoes its writes."""
        with self._lock:
            if self._presence is not None:
                return
            try:
                fd = os.open(self.root / "blobs", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError:
                return  # no layout yet: nothing to rely on
            fcntl.flock(fd, fcntl.LOCK_SH)
            self._presence = fd

    def _record(self, path: Path, existed: bool) -> None:
        if not existed:
            with self._lock:
                self._created.append(path)

    def _release(self) -> None:
        if self._presence is not None:
            os.close(self._presence)
            self._presence = None
        self._ready = False

    def abort(self) -> None:
        """Undo every write since the last commit: pending index.json changes are dropped and the
        files and directories this sink created are removed, newest first (directories only when
        empty). When another writer is using the layout, its files are left alone: they may be
        what that writer's blobs are."""
        self._pending.clear()
        self._discard_staged()
        created, self._created = self._created, []
        if not created:
            self._release()
            return
        try:
            with contextlib.ExitStack() as stack:
                if self.root.parent.is_dir():
                    stack.enter_context(_flocked(self.root.parent))
                alone = True
                if self._presence is not None:
                    try:
                        fcntl.flock(self._presence, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        alone = False
                if alone:
                    for path in reversed(created):
                        with contextlib.suppress(OSError):
                            _remove(path)
        except OSError:
            pass  # best effort: undoing must not hide the error that caused it
        finally:
            self._release()

    def close(self) -> None:
        """Release the layout; what was written but not committed by `tag` is undone."""
        self.abort()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """A normal exit commits pending index.json entries (SOCI v1 indexes written without a
        tag); an exception undoes everything since the last commit."""
        if exc_type is None:
            try:
                if self._pending:
                    self._commit()
            except BaseException:
                self.abort()
                raise
            self._discard_staged()
            self._release()
        else:
            self.abort()

    def __del__(self) -> None:
        if getattr(self, "_presence", None) is not None:
            self._release()

    # blobs

    def stream_uploader(self, source: ImageSource) -> Callable[[Descriptor], _StagedBlob | None] | None:
        """What writes a layer into the layout from the stream that indexes it, so a layer from a
        registry (or any source but a layout, whose blobs are hard-linked) is read once: a
        picklable `desc -> _StagedBlob` for the worker processes. The layout is created now,
        before they fork."""
        if isinstance(source, LayoutSource):
            return None
        self._ensure_ready()
        self._staging = True
        return functools.partial(_stage_blob, self.root, self._stage_token)

    def _discard_staged(self) -> None:
        """Remove the staged layers no `copy_blob` took (a failed or skipped layer's)."""
        if not self._staging:
            return  # nothing was staged: no need to list a possibly large blobs/ directory
        with contextlib.suppress(OSError):
            for path in (self.root / "blobs" / "sha256").glob(f".*.staged-{self._stage_token}"):
                with contextlib.suppress(OSError):
                    path.unlink()

    def _take_staged(self, desc: Descriptor, target: Path) -> bool:
        """Rename a layer staged while it was indexed into place (see _StagedBlob)."""
        if not self._staging:
            return False
        staged = _staged_path(self.root, self._stage_token, desc.digest)
        try:
            if staged.stat().st_size != desc.size:
                return False
            os.replace(staged, target)
        except OSError:
            return False
        return True

    def blob_path(self, digest: str) -> Path:
        return _blob_path(self.root, digest)

    def has_blob(self, desc: Descriptor) -> bool:
        self._join()
        return _has_blob(self.root, desc)

    def write_blob(self, desc: Descriptor, data: bytes) -> None:
        if len(data) != desc.size or sha256_digest(data) != desc.digest:
            raise DigestMismatchError(
                f"refusing to store {desc.digest}: the {len(data)} bytes given have digest {sha256_digest(data)}"
            )
        self._ensure_ready()
        if not self.has_blob(desc):
            path = _blob_path(self.root, desc.digest)
            existed = path.exists()
            try:
                write_atomic(path, data, make_parents=False)
            except OSError as exc:
                raise ImageError(f"cannot write blob {desc.digest} to {self.root}: {_why(exc)}") from None
            self._record(path, existed)

    def copy_blob(self, desc: Descriptor, source: ImageSource, *, verified: bool = False) -> None:
        """Stream a blob from `source` into the layout; it appears only once its digest and size
        were verified (a hard link instead of a copy when `source` is a layout on this filesystem;
        `verified` skips re-hashing the source blob before linking it)."""
        if self.has_blob(desc):
            return
        self._ensure_ready()
        target = _blob_path(self.root, desc.digest)
        existed = target.exists()
        if isinstance(source, LayoutSource) and self._link_from(source, desc, verified=verified):
            self._record(target, existed)
            return
        if self._take_staged(desc, target):
            self._record(target, existed)
            return
        try:
            with contextlib.closing(source.open_blob(desc)) as stream, \
                    atomic_writer(target, make_parents=False) as out:
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
        except OSError as exc:
            raise ImageError(f"cannot copy blob {desc.digest} to {self.root}: {_why(exc)}") from None
        self._record(target, existed)

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
            tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.link")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            try:
                os.link(src, tmp)
                os.replace(tmp, target)
            finally:
                # Also after success: renaming a link onto another link of the same file (a
                # concurrent writer linked it first) is a no-op that leaves `tmp` in place.
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
            return True
        except OSError:
            return False

    def write_manifest(self, desc: Descriptor, data: bytes) -> None:
        """Store a manifest or index blob; index.json is not touched (see `tag`)."""
        self.write_blob(desc, data)

    # index.json

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with _flocked(self.root):
            yield

    def _read_index(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """(top-level fields other than `manifests`, raw entries) of index.json."""
        try:
            data = (self.root / "index.json").read_bytes()
        except FileNotFoundError:
            return {}, []
        except OSError as exc:
            raise ImageError(f"cannot read {self.root / 'index.json'}: {_why(exc)}") from None
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
        write_atomic(self.root / "index.json", gojson.dumps(index), make_parents=False)

    def _commit(self) -> None:
        """Apply the pending index.json changes in one locked read-modify-write; what was written
        so far then belongs to the layout (nothing to undo)."""
        self._ensure_ready()
        try:
            with self._locked():
                top, entries = self._read_index()
                changed = not (self.root / "index.json").exists()
                for change in self._pending:
                    new = change(entries)
                    if new is not None:
                        entries, changed = new, True
                if changed:
                    self._write_index(top, entries)
        except OSError as exc:
            raise ImageError(f"cannot update {self.root / 'index.json'}: {_why(exc)}") from None
        self._pending.clear()
        with self._lock:
            self._created.clear()

    def _update_index(self, change: Callable[[list[dict[str, Any]]], list[dict[str, Any]] | None]) -> None:
        """Apply `change` (after any held-back change) now; None from `change` means no change."""
        self._pending.append(change)
        self._commit()

    def entries(self) -> list[Descriptor]:
        """Every index.json entry, in file order."""
        _, raw = self._read_index()
        return [Descriptor.from_json(e) for e in raw]

    def tag(self, desc: Descriptor) -> None:
        """Point the sink's tag (or the ref.name `desc` carries, when the sink has none) at
        `desc`, and commit: the entry holding that tag is replaced, every other entry is kept.
        Without any tag, `desc` is added as an untagged entry unless one with its digest is listed
        already."""
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

    def tagged(self) -> Descriptor | None:
        """What the sink's tag points at now (None: the tag, or index.json, does not exist yet)."""
        if not self.tag_name:
            return None
        _, raw = self._read_index()
        for entry in raw:
            if _raw_ref_name(entry) == self.tag_name:
                return Descriptor.from_json(entry)
        return None

    def add_entry(self, desc: Descriptor) -> None:
        """List `desc` in index.json without a tag, e.g. a SOCI v1 index with its artifactType
        (how the reference's layout store finds them), and commit. Nothing is added if its
        digest is listed."""
        if not self.has_blob(desc):
            raise ImageError(f"cannot list {desc.digest} in index.json: its blob was not written to {self.root}")
        self._update_index(_adding(desc))

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
        """A manifest that refers to `subject` (a SOCI v1 index): stored now, listed untagged in
        index.json with its artifactType by the next commit (`tag`, or leaving the `with` block)."""
        del subject  # a layout has no referrers API: the manifest's own `subject` field links them
        self.write_blob(desc, data)
        self._pending.append(_adding(Descriptor(media_type=desc.media_type, digest=desc.digest, size=desc.size,
                                                annotations=dict(desc.annotations),
                                                artifact_type=desc.artifact_type)))


def _adding(desc: Descriptor) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]] | None]:
    def change(entries: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        if any(e.get("digest") == desc.digest for e in entries):
            return None
        return [*entries, desc.to_json()]

    return change


def _remove(path: Path) -> None:
    """Delete a file, or a directory if it is empty; gone already is fine."""
    try:
        if path.is_dir() and not path.is_symlink():
            path.rmdir()
        else:
            path.unlink()
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ENOTEMPTY, errno.EEXIST):
            raise


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
