"""`LazyFileSystem`: one pyfuse3 file system per process serving every lazily mounted layer.

pyfuse3 holds one mount per process, so one FUSE file system serves all layers: each mounted
layer (`MountedLayer`: a `LayerTree` and its `SpanFetcher`) is a directory somewhere in it, and an
overlay lower directory is that subdirectory. Which directories exist above the layers is up to
a **root provider**, the seam between this file system and the daemon using it:

* the snapshotter's `LayerDirectory`: the root lists the mounted layers by name;
* the podman store (issue 14) plugs in its own provider: `<base64(ref)>/sha256:<hex>/` resolved on
  lookup, holding `diff` (a `MountedLayer`), `info` and `blob` (`VirtualFile`s), without any change
  below.

A provider answers `lookup(parent_key, name)` and `listdir(parent_key)` for the directories it
owns (`parent_key` None is the mount's root) with `VirtualDir`, `VirtualFile` or `MountedLayer`
nodes; everything inside a `MountedLayer` is answered from its tree. Optional `change(op,
parent_key, name)` takes the namespace changes a writable mount receives (`mknod`, `create`,
`mkdir`, `unlink`, `rmdir`); without it they fail with EROFS.

Inodes: 1 is the root; virtual nodes get small numbers by key; layer `slot` s (from 1) owns
inodes `s << 32 | node`. Reads run as pyfuse3 trio tasks: cached spans are sliced on the trio
thread, everything blocking (registry, inflate, disk) runs on worker threads (`SpanFetcher`).
Layers are attached and detached on the trio thread (`trio.from_thread.run_sync` from others).
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import re
import stat
import time
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pyfuse3
import trio

from socikit.lazy.events import LOGGER_NAME, LazyEvents, NoEvents, log_event
from socikit.lazy.fetcher import SpanFetcher, SpanUnavailableError
from socikit.lazy.tree import LayerTree, NodeAttributes

__all__ = [
    "FuseOptions",
    "LayerDirectory",
    "LazyFileSystem",
    "MountedLayer",
    "RootProvider",
    "VirtualDir",
    "VirtualFile",
]

_logger = logging.getLogger(LOGGER_NAME)
SLOT_SHIFT = 32
NODE_MASK = (1 << SLOT_SHIFT) - 1
ROOT_INODE = pyfuse3.ROOT_INODE
BLOCK_SIZE = 4096
# errnos that are answers, not failures: not counted as FUSE operation errors
_QUIET = frozenset({errno.ENOENT, pyfuse3.ENOATTR, errno.ENODATA, errno.ERANGE})


@dataclass(frozen=True)
class VirtualDir:
    """A directory the root provider makes up; `key` names it in later provider calls."""

    key: Hashable
    mode: int = 0o755
    uid: int = 0
    gid: int = 0


@dataclass(frozen=True)
class VirtualFile:
    """A read-only file the root provider makes up: `read(offset, size)` gives its bytes."""

    key: Hashable
    size: int
    read: Callable[[int, int], Awaitable[bytes]]
    mode: int = 0o444
    uid: int = 0
    gid: int = 0

    @staticmethod
    def of_bytes(key: Hashable, data: bytes, *, mode: int = 0o444) -> VirtualFile:
        async def read(offset: int, size: int) -> bytes:
            return data[offset:offset + size]

        return VirtualFile(key, len(data), read, mode)


@dataclass(eq=False)
class MountedLayer:
    """A layer attached to the file system (made by `LazyFileSystem.attach`)."""

    slot: int
    tree: LayerTree
    fetcher: SpanFetcher
    label: str  # the layer digest (metrics, logs)
    attached: bool = True
    open_files: int = 0

    @property
    def root_inode(self) -> int:
        return self.slot << SLOT_SHIFT

    def inode(self, node: int) -> int:
        return (self.slot << SLOT_SHIFT) | node


Node = VirtualDir | VirtualFile | MountedLayer


class RootProvider(Protocol):
    """The directories above the layers (see the module doc). Called on the trio thread."""

    async def lookup(self, parent: Hashable | None, name: str) -> Node | None: ...

    async def listdir(self, parent: Hashable | None) -> Sequence[tuple[str, Node]]: ...


class LayerDirectory:
    """The snapshotter's root provider: the root lists layers by name, nothing else."""

    def __init__(self) -> None:
        self.layers: dict[str, MountedLayer] = {}

    async def lookup(self, parent: Hashable | None, name: str) -> Node | None:
        return self.layers.get(name) if parent is None else None

    async def listdir(self, parent: Hashable | None) -> Sequence[tuple[str, Node]]:
        return list(self.layers.items()) if parent is None else []


@dataclass(frozen=True)
class FuseOptions:
    """Mount options and kernel cache timeouts (seconds)."""

    fsname: str = "socikit"
    read_only: bool = True
    allow_other: bool = True
    entry_timeout: float = 1.0
    attr_timeout: float = 1.0
    negative_timeout: float = 1.0
    log_operations: bool = False
    # Fetch every span of a regular file when it is opened, for files up to this size (0: never):
    # a program reads what it opens, and fetching the spans together beats fetching them as the
    # kernel's reads arrive, one after the other.
    prefetch_on_open: int = 0
    # The kernel's readahead for the mount (KiB; 0 leaves its default, 128 KiB). It also bounds
    # the size of one FUSE read request (up to 1 MiB, the kernel's limit): 8 times fewer requests
    # than the default, and several in flight for a sequential reader.
    read_ahead_kb: int = 4096

    def mount_options(self) -> set[str]:
        options = {f"fsname={self.fsname}", "default_permissions", "suid", "dev"}
        if self.allow_other:
            options.add("allow_other")
        if self.read_only:
            options.add("ro")
        return options


@dataclass
class _OpenFile:
    layer: MountedLayer | None
    offset: int = 0
    size: int = 0
    virtual: VirtualFile | None = None


@dataclass
class _OpenDir:
    entries: list[tuple[bytes, int]] = field(default_factory=list)


def _unescape(field: str) -> str:
    """A mountinfo path field: octal escapes (`\\040` for a space) decoded."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _set_read_ahead(mountpoint: Path, kib: int, logger: logging.Logger) -> None:
    """Set the readahead of the mount's backing device (`/sys/class/bdi/<major>:<minor>`), best
    effort: without it reads still work, in smaller requests. The device number comes from
    mountinfo: a `stat` of the mount point would wait for this very file system to answer."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as info:
            devices = [line.split()[2] for line in info if _unescape(line.split()[4]) == str(mountpoint)]
        if not devices:
            raise OSError(f"{mountpoint} is not in /proc/self/mountinfo")
        Path(f"/sys/class/bdi/{devices[-1]}/read_ahead_kb").write_text(f"{kib}\n")
    except OSError as exc:
        log_event(logger, logging.DEBUG, "FUSE readahead left at the kernel's default", error=str(exc))


def _fuse_error(code: int) -> pyfuse3.FUSEError:
    return pyfuse3.FUSEError(code)


class LazyFileSystem(pyfuse3.Operations):
    """See the module doc. Use `serve(mountpoint, task_status=...)` in a trio nursery."""

    supports_dot_lookup = True
    enable_writeback_cache = False
    enable_acl = False

    def __init__(self, root: RootProvider, *, options: FuseOptions | None = None,
                 events: LazyEvents | None = None, logger: logging.Logger | None = None) -> None:
        super().__init__()
        self.root = root
        self.options = options or FuseOptions()
        self.events: LazyEvents = events or NoEvents()
        self.logger = logger or _logger
        self.mountpoint: Path | None = None
        self._slots: dict[int, MountedLayer] = {}
        self._next_slot = itertools.count(1)
        self._virtual_inodes: dict[Hashable, int] = {}
        self._virtual_nodes: dict[int, Node] = {}
        self._virtual_parents: dict[int, int] = {}
        self._next_virtual = itertools.count(ROOT_INODE + 1)
        self._handles: dict[int, _OpenFile] = {}
        self._dirs: dict[int, _OpenDir] = {}
        self._next_handle = itertools.count(1)
        self._nursery: trio.Nursery | None = None
        self._started = time.time_ns()

    # -- layers (trio thread) -------------------------------------------------------------------

    def attach(self, tree: LayerTree, fetcher: SpanFetcher, *, label: str) -> MountedLayer:
        """Give a layer its inodes. The root provider decides where it shows."""
        layer = MountedLayer(next(self._next_slot), tree, fetcher, label)
        self._slots[layer.slot] = layer
        return layer

    def detach(self, layer: MountedLayer) -> None:
        """Forget a layer's inodes: later operations on them answer ESTALE. The provider must
        stop returning it first (and may `invalidate` its entry)."""
        layer.attached = False
        self._slots.pop(layer.slot, None)

    def invalidate(self, parent: Hashable | None, name: str) -> None:
        """Tell the kernel to forget the entry `name` of a provider directory (after a change)."""
        inode = ROOT_INODE if parent is None else self._virtual_inodes.get(parent)
        if inode is not None and self.mountpoint is not None:
            pyfuse3.invalidate_entry_async(inode, os.fsencode(name), ignore_enoent=True)

    @property
    def layers(self) -> list[MountedLayer]:
        return list(self._slots.values())

    def start_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run a background task in the file system's nursery (while it serves)."""
        if self._nursery is not None:
            self._nursery.start_soon(fn, *args)

    # -- serving ----------------------------------------------------------------------------------

    async def serve(self, mountpoint: Path, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Mount at `mountpoint` and serve until cancelled; then unmount (lazily, so that a busy
        mount, e.g. under a running container's overlay, is detached rather than kept)."""
        pyfuse3.init(self, str(mountpoint), self.options.mount_options())
        self.mountpoint = mountpoint
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(pyfuse3.main)
                if self.options.read_ahead_kb:
                    nursery.start_soon(self._tune_read_ahead, mountpoint)
                task_status.started()
        finally:
            self._nursery = None
            self.mountpoint = None
            pyfuse3.close(unmount=True)

    async def _tune_read_ahead(self, mountpoint: Path) -> None:
        # The kernel sets the readahead when the FUSE handshake (INIT) completes; a stat that this
        # file system answers comes after it.
        try:
            await trio.to_thread.run_sync(os.stat, mountpoint)
        except OSError:
            return
        _set_read_ahead(mountpoint, self.options.read_ahead_kb, self.logger)

    # -- inode helpers --------------------------------------------------------------------------

    def _virtual_inode(self, node: VirtualDir | VirtualFile, parent: int) -> int:
        inode = self._virtual_inodes.get(node.key)
        if inode is None:
            inode = next(self._next_virtual)
            self._virtual_inodes[node.key] = inode
        self._virtual_nodes[inode] = node
        self._virtual_parents[inode] = parent
        return inode

    def _inode_of(self, node: Node, parent: int) -> int:
        if isinstance(node, MountedLayer):
            self._virtual_parents[node.root_inode] = parent
            return node.root_inode
        return self._virtual_inode(node, parent)

    def _layer_of(self, inode: int) -> tuple[MountedLayer, int] | None:
        slot = inode >> SLOT_SHIFT
        if not slot:
            return None
        layer = self._slots.get(slot)
        if layer is None:
            raise _fuse_error(errno.ESTALE)
        return layer, inode & NODE_MASK

    def _entry(self, inode: int, attrs: NodeAttributes) -> pyfuse3.EntryAttributes:
        entry = pyfuse3.EntryAttributes()
        entry.st_ino = inode
        entry.generation = 0
        entry.entry_timeout = self.options.entry_timeout
        entry.attr_timeout = self.options.attr_timeout
        entry.st_mode = attrs.mode
        entry.st_nlink = attrs.nlink
        entry.st_uid = attrs.uid
        entry.st_gid = attrs.gid
        entry.st_rdev = attrs.rdev
        entry.st_size = attrs.size
        entry.st_blksize = BLOCK_SIZE
        entry.st_blocks = attrs.blocks
        entry.st_atime_ns = attrs.mtime_ns
        entry.st_mtime_ns = attrs.mtime_ns
        entry.st_ctime_ns = attrs.mtime_ns
        return entry

    def _negative_entry(self) -> pyfuse3.EntryAttributes:
        entry = pyfuse3.EntryAttributes()
        entry.st_ino = 0
        entry.entry_timeout = self.options.negative_timeout
        return entry

    def _virtual_attributes(self, node: VirtualDir | VirtualFile | None) -> NodeAttributes:
        if node is None or isinstance(node, VirtualDir):
            mode, uid, gid = (0o755, 0, 0) if node is None else (node.mode, node.uid, node.gid)
            return NodeAttributes(stat.S_IFDIR | mode, 2, uid, gid, BLOCK_SIZE, 0, self._started)
        return NodeAttributes(stat.S_IFREG | node.mode, 1, node.uid, node.gid, node.size, 0, self._started)

    def _attributes(self, inode: int) -> pyfuse3.EntryAttributes:
        found = self._layer_of(inode)
        if found is not None:
            layer, node = found
            return self._entry(inode, layer.tree.attributes(node))
        if inode == ROOT_INODE:
            return self._entry(inode, self._virtual_attributes(None))
        virtual = self._virtual_nodes.get(inode)
        if virtual is None or isinstance(virtual, MountedLayer):
            raise _fuse_error(errno.ESTALE)
        return self._entry(inode, self._virtual_attributes(virtual))

    def _virtual_key(self, inode: int) -> Hashable | None:
        if inode == ROOT_INODE:
            return None
        node = self._virtual_nodes.get(inode)
        if isinstance(node, VirtualDir):
            return node.key
        if node is None:
            raise _fuse_error(errno.ESTALE)
        raise _fuse_error(errno.ENOTDIR)

    # -- error accounting -----------------------------------------------------------------------

    def _failed(self, operation: str, exc: BaseException) -> pyfuse3.FUSEError:
        if isinstance(exc, pyfuse3.FUSEError):
            if exc.errno not in _QUIET:
                self.events.fuse_error(operation)
            return exc
        if isinstance(exc, SpanUnavailableError):
            self.events.fuse_error(operation)
            log_event(self.logger, logging.WARNING, "read failed", operation=operation, error=str(exc))
            return _fuse_error(errno.EIO)
        if isinstance(exc, OSError) and exc.errno:
            if exc.errno not in _QUIET:
                self.events.fuse_error(operation)
            return _fuse_error(exc.errno)
        self.events.fuse_error(operation)
        log_event(self.logger, logging.ERROR, "FUSE operation failed", operation=operation,
                  error=f"{type(exc).__name__}: {exc}")
        return _fuse_error(errno.EIO)

    def _trace(self, operation: str, **fields: Any) -> None:
        if self.options.log_operations:
            log_event(self.logger, logging.DEBUG, "fuse", operation=operation, **fields)

    # -- operations -----------------------------------------------------------------------------

    async def lookup(self, parent_inode: int, name: bytes, ctx: Any = None) -> pyfuse3.EntryAttributes:
        self._trace("lookup", inode=parent_inode, name=os.fsdecode(name))
        try:
            return await self._lookup(parent_inode, name)
        except BaseException as exc:
            if isinstance(exc, trio.Cancelled):
                raise
            raise self._failed("lookup", exc) from None

    async def _lookup(self, parent_inode: int, name: bytes) -> pyfuse3.EntryAttributes:
        text = os.fsdecode(name)
        found = self._layer_of(parent_inode)
        if found is not None:
            layer, node = found
            if not layer.tree.is_dir(node):
                raise _fuse_error(errno.ENOTDIR)
            if text == ".":
                child: int | None = node
            elif text == "..":
                if node == 0:
                    return self._attributes(self._virtual_parents.get(layer.root_inode, ROOT_INODE))
                child = layer.tree.parent(node)
            else:
                child = layer.tree.lookup(node, text)
            if child is None:
                # a layer never changes: let the kernel remember the miss (programs probe a lot)
                return self._negative_entry()
            return self._entry(layer.inode(child), layer.tree.attributes(child))
        key = self._virtual_key(parent_inode)
        if text == ".":
            return self._attributes(parent_inode)
        if text == "..":
            return self._attributes(self._virtual_parents.get(parent_inode, ROOT_INODE))
        target = await self.root.lookup(key, text)
        if target is None:
            raise _fuse_error(errno.ENOENT)
        return self._attributes(self._inode_of(target, parent_inode))

    async def getattr(self, inode: int, ctx: Any = None) -> pyfuse3.EntryAttributes:
        try:
            return self._attributes(inode)
        except BaseException as exc:
            raise self._failed("getattr", exc) from None

    async def setattr(self, inode: int, attr: Any, fields: Any, fh: int | None, ctx: Any) -> Any:
        raise self._failed("setattr", _fuse_error(errno.EROFS))

    async def readlink(self, inode: int, ctx: Any) -> bytes:
        try:
            found = self._layer_of(inode)
            target = None if found is None else found[0].tree.readlink(found[1])
            if target is None:
                raise _fuse_error(errno.EINVAL)
            return target
        except BaseException as exc:
            raise self._failed("readlink", exc) from None

    async def opendir(self, inode: int, ctx: Any) -> int:
        self._trace("opendir", inode=inode)
        try:
            listing = _OpenDir()
            found = self._layer_of(inode)
            if found is not None:
                layer, node = found
                if not layer.tree.is_dir(node):
                    raise _fuse_error(errno.ENOTDIR)
                listing.entries = [(os.fsencode(name), layer.inode(kid)) for name, kid in layer.tree.entries(node)]
            else:
                key = self._virtual_key(inode)
                listing.entries = [(os.fsencode(name), self._inode_of(target, inode))
                                   for name, target in await self.root.listdir(key)]
            handle = next(self._next_handle)
            self._dirs[handle] = listing
            return handle
        except BaseException as exc:
            if isinstance(exc, trio.Cancelled):
                raise
            raise self._failed("opendir", exc) from None

    async def readdir(self, fh: int, start_id: int, token: Any) -> None:
        try:
            listing = self._dirs.get(fh)
            if listing is None:
                raise _fuse_error(errno.EBADF)
            for position in range(start_id, len(listing.entries)):
                name, inode = listing.entries[position]
                try:
                    attrs = self._attributes(inode)
                except pyfuse3.FUSEError:
                    continue  # detached meanwhile
                if not pyfuse3.readdir_reply(token, name, attrs, position + 1):
                    return
        except BaseException as exc:
            raise self._failed("readdir", exc) from None

    async def releasedir(self, fh: int) -> None:
        self._dirs.pop(fh, None)

    async def open(self, inode: int, flags: int, ctx: Any) -> pyfuse3.FileInfo:
        self._trace("open", inode=inode)
        try:
            if flags & os.O_ACCMODE != os.O_RDONLY or flags & os.O_TRUNC:
                raise _fuse_error(errno.EROFS)
            found = self._layer_of(inode)
            if found is None:
                virtual = self._virtual_nodes.get(inode)
                if not isinstance(virtual, VirtualFile):
                    raise _fuse_error(errno.EISDIR if virtual is not None or inode == ROOT_INODE else errno.ESTALE)
                opened = _OpenFile(None, 0, virtual.size, virtual)
            else:
                layer, node_id = found
                file_range = layer.tree.file_range(node_id)
                if file_range is None:
                    raise _fuse_error(errno.EISDIR if layer.tree.is_dir(node_id) else errno.EACCES)
                opened = _OpenFile(layer, *file_range)
                layer.open_files += 1
                limit = self.options.prefetch_on_open
                if limit and 0 < opened.size <= limit:
                    ids = layer.fetcher.spans_of(opened.offset, opened.size)
                    if len(ids) > 1:
                        self.start_soon(layer.fetcher.prefetch, list(ids))
            handle = next(self._next_handle)
            self._handles[handle] = opened
            # Layers never change: let the kernel keep what it has read of them.
            return pyfuse3.FileInfo(fh=handle, keep_cache=True)
        except BaseException as exc:
            raise self._failed("open", exc) from None

    async def read(self, fh: int, off: int, size: int) -> bytes:
        try:
            opened = self._handles.get(fh)
            if opened is None:
                raise _fuse_error(errno.EBADF)
            if off >= opened.size or size <= 0:
                return b""
            size = min(size, opened.size - off)
            if opened.virtual is not None:
                return await opened.virtual.read(off, size)
            assert opened.layer is not None
            if not opened.layer.attached:
                raise _fuse_error(errno.ESTALE)
            return await opened.layer.fetcher.read(opened.offset + off, size)
        except BaseException as exc:
            if isinstance(exc, trio.Cancelled):
                raise
            raise self._failed("read", exc) from None

    async def release(self, fh: int) -> None:
        opened = self._handles.pop(fh, None)
        if opened is not None and opened.layer is not None:
            opened.layer.open_files -= 1

    async def getxattr(self, inode: int, name: bytes, ctx: Any) -> bytes:
        try:
            found = self._layer_of(inode)
            value = None if found is None else found[0].tree.xattr(found[1], name)
            if value is None:
                raise _fuse_error(pyfuse3.ENOATTR)
            return value
        except BaseException as exc:
            raise self._failed("getxattr", exc) from None

    async def listxattr(self, inode: int, ctx: Any) -> Sequence[bytes]:
        try:
            found = self._layer_of(inode)
            return [] if found is None else found[0].tree.xattr_names(found[1])
        except BaseException as exc:
            raise self._failed("listxattr", exc) from None

    async def statfs(self, ctx: Any) -> pyfuse3.StatvfsData:
        data = pyfuse3.StatvfsData()
        data.f_bsize = BLOCK_SIZE
        data.f_frsize = BLOCK_SIZE
        data.f_blocks = sum(layer.fetcher.table.uncompressed_size for layer in self._slots.values()) // BLOCK_SIZE
        data.f_bfree = 0
        data.f_bavail = 0
        data.f_files = sum(layer.tree.node_count for layer in self._slots.values()) + len(self._virtual_nodes) + 1
        data.f_ffree = 0
        data.f_favail = 0
        data.f_namemax = 255
        return data

    # -- namespace changes: the provider's, or EROFS ---------------------------------------------

    async def _change(self, operation: str, parent_inode: int, name: bytes) -> None:
        try:
            change = getattr(self.root, "change", None)
            if change is None or self._layer_of(parent_inode) is not None:
                raise _fuse_error(errno.EROFS)
            await change(operation, self._virtual_key(parent_inode), os.fsdecode(name))
        except BaseException as exc:
            if isinstance(exc, trio.Cancelled):
                raise
            raise self._failed(operation, exc) from None

    async def mknod(self, parent_inode: int, name: bytes, mode: int, rdev: int, ctx: Any) -> Any:
        await self._change("mknod", parent_inode, name)
        raise _fuse_error(errno.ENOENT)

    async def mkdir(self, parent_inode: int, name: bytes, mode: int, ctx: Any) -> Any:
        await self._change("mkdir", parent_inode, name)
        raise _fuse_error(errno.ENOENT)

    async def create(self, parent_inode: int, name: bytes, mode: int, flags: int, ctx: Any) -> Any:
        await self._change("create", parent_inode, name)
        raise _fuse_error(errno.ENOENT)

    async def unlink(self, parent_inode: int, name: bytes, ctx: Any) -> None:
        await self._change("unlink", parent_inode, name)

    async def rmdir(self, parent_inode: int, name: bytes, ctx: Any) -> None:
        await self._change("rmdir", parent_inode, name)
