"""`LayerTree`: one layer's directory tree as an overlay lower directory shows it, from its ztoc.

Pure: a ztoc in, attributes and names out. Built on `socikit.ztoc.index.TocIndex` (cleaned
paths, synthesized parents, hard links sharing a node, link counts), with the snapshotter's rules
on top (fact sheet §7.6):

* every node gets the attributes a file system reports: type bits from the entry type over the
  entry's permission bits (setuid, setgid and sticky kept), owner, size (a symlink's is the length
  of its target, a directory's 4096), device numbers, modification time in nanoseconds;
* a hard link's own entry gives the shared inode its mode, owner and time (the last entry naming
  the inode wins) and adds its xattrs, as containerd's tar applier does when it makes the link;
* `SCHILY.xattr.<name>` PAX records are the xattrs (prefix stripped), unless the ztoc descriptor
  says `com.amazon.soci.disable-xattrs`;
* a whiteout `.wh.<x>` is shown as a character device 0/0 named `<x>` (overlayfs' form), unless
  the layer itself has a real `<x>` there, in which case it is hidden;
* `.wh..wh..opq` is hidden and its directory reports `trusted.overlay.opaque=y` (listed) and
  `user.overlay.opaque=y` (answered when asked, for an overlay mounted with `userxattr`, but not
  listed, so a container's `listxattr` shows what it shows under containerd's overlayfs);
* in an image's first layer (`bottom=True`) whiteouts and opaque markers are hidden and have no
  effect, as containerd applies a first layer (there is nothing below to delete); overlayfs
  relies on it: a directory only its lowest layer holds is listed as is, whiteouts included.

Modification times are clamped to [1970-01-01, 2262-04-11] as containerd's applier clamps them.
"""

from __future__ import annotations

import datetime as dt
import re
import stat
from collections.abc import Iterator
from typing import NamedTuple

from socikit.errors import FormatError
from socikit.ztoc.index import ROOT, TocIndex, toc_index
from socikit.ztoc.model import FileMetadata, Ztoc

__all__ = ["NodeAttributes", "LayerTree", "mod_time_ns", "WHITEOUT_PREFIX", "OPAQUE_MARKER"]

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
XATTR_PREFIX = b"SCHILY.xattr."
OPAQUE_XATTR = b"trusted.overlay.opaque"
USER_OPAQUE_XATTR = b"user.overlay.opaque"
DIR_SIZE = 4096
BLOCK = 512

_TYPE_BITS = {
    "reg": stat.S_IFREG,
    "hardlink": stat.S_IFREG,
    "dir": stat.S_IFDIR,
    "symlink": stat.S_IFLNK,
    "char": stat.S_IFCHR,
    "block": stat.S_IFBLK,
    "fifo": stat.S_IFIFO,
}
_MAX_NS = (1 << 63) - 1
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_RFC3339 = re.compile(
    r"(?P<date>\d{4,}-\d{2}-\d{2})T(?P<time>\d{2}:\d{2}:\d{2})(?:\.(?P<frac>\d{1,9}))?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2})"
)


def mod_time_ns(text: str) -> int:
    """Nanoseconds since the epoch of a ztoc `mod_time` (Go's RFC 3339 text with up to nine
    fraction digits), clamped to what containerd's applier sets: never before the epoch (Go's
    zero time `0001-01-01T00:00:00Z` becomes 0) and at most 2**63 - 1. Empty text is 0."""
    if not text:
        return 0
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise FormatError(f"modification time {text[:40]!r} is not RFC 3339")
    zone = match.group("zone")
    try:
        stamp = dt.datetime.fromisoformat(f"{match.group('date')}T{match.group('time')}"
                                          f"{'+00:00' if zone == 'Z' else zone}")
    except ValueError:
        raise FormatError(f"modification time {text[:40]!r} is not a date") from None
    delta = stamp - _EPOCH
    seconds = delta.days * 86400 + delta.seconds
    fraction = int((match.group("frac") or "0").ljust(9, "0"))
    return max(0, min(seconds * 1_000_000_000 + fraction, _MAX_NS))


class NodeAttributes(NamedTuple):
    """What `stat` shows of a node (mode includes the type bits)."""

    mode: int
    nlink: int
    uid: int
    gid: int
    size: int
    rdev: int
    mtime_ns: int

    @property
    def blocks(self) -> int:
        return (self.size + BLOCK - 1) // BLOCK


class LayerTree:
    """A layer's tree, nodes numbered as in its TocIndex (0 is the layer's root directory).

    Names are `str` as the ztoc holds them (surrogate-escaped bytes); `os.fsencode` turns them
    into the bytes a file system passes around. Directory views (whiteouts translated, markers
    hidden) are built on first use and kept."""

    def __init__(self, ztoc: Ztoc, *, xattrs: bool = True, bottom: bool = False) -> None:
        index = toc_index(ztoc)
        if index.skipped:
            name, reason = index.skipped[0]
            raise FormatError(f"the layer's TOC cannot be shown as a tree: {name!r}: {reason}"
                              f"{f' (and {len(index.skipped) - 1} more)' if len(index.skipped) > 1 else ''}")
        self.index: TocIndex = index
        self.xattrs_enabled = xattrs
        self.bottom = bottom
        self.node_count = 1 + max((index.node_of(path) or 0) for path in index)
        # A hard link's own entry: the applier's chmod/chown/chtimes after linking wins.
        self._link_entries: dict[int, FileMetadata] = {}
        self._link_xattrs: dict[int, list[tuple[bytes, bytes]]] = {}
        for entry in ztoc.toc:
            if entry.type != "hardlink":
                continue
            node = index.node_of(entry.name)
            if node is None or index.is_dir(node):
                continue
            self._link_entries[node] = entry
            if entry.xattrs:
                self._link_xattrs.setdefault(node, []).extend(entry.xattrs)
        self._views: dict[int, dict[str, int]] = {}
        self._opaque: set[int] = set()
        self._whiteouts: set[int] = set()
        self._parents: dict[int, int] | None = None

    # -- directories ------------------------------------------------------------------------------

    def is_dir(self, node: int) -> bool:
        return self.index.is_dir(node)

    def _view(self, node: int) -> dict[str, int]:
        view = self._views.get(node)
        if view is not None:
            return view
        kids = self.index.children(node)
        if kids is None:
            raise NotADirectoryError(node)
        view = {}
        for name, kid in kids.items():
            if name == OPAQUE_MARKER:
                if not self.bottom:
                    self._opaque.add(node)
            elif name.startswith(WHITEOUT_PREFIX):
                hidden = name[len(WHITEOUT_PREFIX):]
                if hidden and hidden not in kids and not self.bottom:
                    view[hidden] = kid
                    self._whiteouts.add(kid)
            else:
                view[name] = kid
        self._views[node] = view
        return view

    def lookup(self, node: int, name: str) -> int | None:
        """The node called `name` in directory `node` as the layer shows it, or None."""
        return self._view(node).get(name)

    def entries(self, node: int) -> list[tuple[str, int]]:
        """(name, node) of a directory's visible children, in TOC order."""
        return list(self._view(node).items())

    def parent(self, node: int) -> int:
        """The directory holding `node` (the root's parent is the root)."""
        if self._parents is None:
            parents = {ROOT: ROOT}
            stack = [ROOT]
            while stack:
                current = stack.pop()
                for kid in (self.index.children(current) or {}).values():
                    parents.setdefault(kid, current)
                    if self.index.is_dir(kid):
                        stack.append(kid)
            self._parents = parents
        return self._parents.get(node, ROOT)

    def is_opaque(self, node: int) -> bool:
        if not self.index.is_dir(node):
            return False
        self._view(node)
        return node in self._opaque

    def is_whiteout(self, node: int) -> bool:
        """True for a `.wh.<x>` entry shown as the character device `<x>` (known once the
        directory holding it has been looked into)."""
        return node in self._whiteouts

    # -- attributes -----------------------------------------------------------------------------

    def entry(self, node: int) -> FileMetadata:
        return self.index.entry_of(node)

    def attributes(self, node: int) -> NodeAttributes:
        entry = self.index.entry_of(node)
        if node in self._whiteouts:
            return NodeAttributes(stat.S_IFCHR, 1, entry.uid, entry.gid, 0, 0, mod_time_ns(entry.mod_time))
        kind = entry.type
        link = self._link_entries.get(node)
        owner = link if link is not None else entry
        mode = _TYPE_BITS.get(kind, stat.S_IFREG) | (owner.mode & 0o7777)
        if kind == "dir":
            size = DIR_SIZE
        elif kind == "symlink":
            size = len(entry.linkname.encode("utf-8", "surrogateescape"))
        elif kind in ("reg", "hardlink"):
            size = entry.uncompressed_size
        else:
            size = 0
        rdev = _makedev(entry.devmajor, entry.devminor) if kind in ("char", "block") else 0
        return NodeAttributes(mode, self.index.nlink(node), owner.uid, owner.gid, size, rdev,
                              mod_time_ns(owner.mod_time))

    def readlink(self, node: int) -> bytes | None:
        """A symlink's target as bytes, None for anything else."""
        entry = self.index.entry_of(node)
        if entry.type != "symlink" or node in self._whiteouts:
            return None
        return entry.linkname.encode("utf-8", "surrogateescape")

    def file_range(self, node: int) -> tuple[int, int] | None:
        """(offset in the uncompressed tar, size) of a regular file's data; None otherwise."""
        entry = self.index.entry_of(node)
        if entry.type not in ("reg", "hardlink") or node in self._whiteouts:
            return None
        return entry.uncompressed_offset, entry.uncompressed_size

    # -- xattrs ---------------------------------------------------------------------------------

    def _xattr_items(self, node: int) -> Iterator[tuple[bytes, bytes]]:
        if node in self._whiteouts:
            return
        entry = self.index.entry_of(node)
        if self.xattrs_enabled:
            for key, value in (*entry.xattrs, *self._link_xattrs.get(node, ())):
                if key.startswith(XATTR_PREFIX) and len(key) > len(XATTR_PREFIX):
                    yield key[len(XATTR_PREFIX):], value

    def xattr_names(self, node: int) -> list[bytes]:
        """Names `listxattr` shows (the opaque marker as `trusted.overlay.opaque`)."""
        names = list(dict.fromkeys(name for name, _ in self._xattr_items(node)))
        if self.is_opaque(node) and OPAQUE_XATTR not in names:
            names.append(OPAQUE_XATTR)
        return names

    def xattr(self, node: int, name: bytes) -> bytes | None:
        """The value of xattr `name`, or None when the node has none by that name."""
        found = None
        for key, value in self._xattr_items(node):
            if key == name:
                found = value  # a later record (the hard link's) wins, as setxattr would
        if found is None and name in (OPAQUE_XATTR, USER_OPAQUE_XATTR) and self.is_opaque(node):
            return b"y"
        return found


def _makedev(major: int, minor: int) -> int:
    """Linux's dev_t encoding (glibc makedev), for any non-negative major and minor."""
    major &= 0xFFFFFFFF
    minor &= 0xFFFFFFFF
    return ((major & 0xFFFFF000) << 32) | ((major & 0xFFF) << 8) | ((minor & 0xFFFFFF00) << 12) | (minor & 0xFF)
