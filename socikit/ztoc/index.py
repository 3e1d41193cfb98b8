"""`TocIndex`: one ztoc's TOC as the tree a lazily mounted layer shows (fact sheet §7.6), built once.

Names are cleaned the way the snapshotter cleans them (`filepath.Clean("/"+name)` without the
leading '/', so "./usr/bin/" is "usr/bin" and the root is ""). The tree is built in TOC order
with the snapshotter's rules:

* a missing parent directory is synthesized (mode 0o755, owner 0:0, no time), the root too when
  the TOC has no "./" entry;
* a later `dir` entry for an existing directory replaces its attributes and keeps its children;
  any other later entry replaces what was at its path (a directory's subtree goes with it);
* a hard link shares the node of the entry its target path names *at that point* of the TOC
  (a later entry at the target path does not move it) and adds one to that node's link count.

Entries the tree cannot hold are left out and listed in `skipped` as (TOC name, reason): a hard
link whose target is not (yet) in the tree or is a directory, anything below a non-directory,
and a non-directory named like the root. The snapshotter refuses such a layer; `get-file` still
serves the other files.

Nodes are small integers: 0 is the root, TOC entry i (if it made a node) is i + 1, synthesized
directories come after. Hard links to one file share one node, so a node is what an inode number
is made from. Link counts: a file has 1 plus its hard links; a directory 2 plus its
subdirectories.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator, Sequence

from socikit.errors import FileNotInZtocError
from socikit.ztoc._memo import PerZtoc
from socikit.ztoc.model import FileMetadata, Ztoc

__all__ = ["ROOT", "TocIndex", "clean_name", "toc_index"]

ROOT = 0
SYNTHESIZED_DIR_MODE = 0o755

# An empty, "." or ".." component, a leading or a doubled '/': the name needs Clean's full rules.
_UNCLEAN = re.compile(r"(?:^|/)\.{0,2}(?:/|$)")


def clean_name(name: str) -> str:
    """A TOC name as the snapshotter sees it: `filepath.Clean("/"+name)` without the leading '/'."""
    trimmed = name[2:] if name[:2] == "./" else name
    if trimmed[-1:] == "/":
        trimmed = trimmed[:-1]
    # The common case, already clean but for "./" and a directory's '/': cheap substring tests
    # first, the exact pattern only for names with a component starting with '.'.
    if trimmed and "//" not in trimmed and trimmed[0] != "/" and trimmed[-1] != "/":
        if ("/." not in trimmed and trimmed[0] != ".") or _UNCLEAN.search(trimmed) is None:
            return trimmed
    return posixpath.normpath("/" + name).lstrip("/")


def _synthesized_dir(path: str) -> FileMetadata:
    return FileMetadata(path, "dir", 0, 0, "", SYNTHESIZED_DIR_MODE, 0, 0, "", "", "", 0, 0, ())


class TocIndex:
    """Cleaned path → node → entry, directory node → children, link counts (see the module doc).

    Path arguments are cleaned first, so any spelling of a TOC name finds it. Hard links resolve
    to their target's entry everywhere; `linkname` of the hard link itself is not kept."""

    __slots__ = ("_entries", "_paths", "_children", "_nlink", "_first_synthesized", "_root_given", "skipped")

    def __init__(self, toc: Sequence[FileMetadata]) -> None:
        count = len(toc)
        self._first_synthesized = count + 1
        # Node i + 1 is TOC entry i (unused when the entry made no node); 0 is the root.
        self._entries: list[FileMetadata] = [_synthesized_dir(""), *toc]
        self._nlink: list[int] = [1] * (count + 1)
        self._paths: dict[str, int] = {"": ROOT}
        self._children: dict[int, dict[str, int]] = {ROOT: {}}
        self._root_given = False
        skipped: list[tuple[str, str]] = []
        paths, children, entries, nlink = self._paths, self._children, self._entries, self._nlink
        clean = clean_name
        unclean = _UNCLEAN.search
        # Tars list a directory's entries together: remember the last parent looked up.
        last_parent_path: str | None = None
        siblings: dict[str, int] = {}
        for node, entry in enumerate(toc, 1):
            name, kind = entry[0], entry[1]
            # clean_name, inlined for its common case (a call per entry is a tenth of the time)
            path = name[2:] if name[:2] == "./" else name
            if path[-1:] == "/":
                path = path[:-1]
            if not (
                path
                and "//" not in path
                and path[0] != "/"
                and path[-1] != "/"
                and (("/." not in path and path[0] != ".") or unclean(path) is None)
            ):
                path = clean(name)
            if not path and kind != "dir":
                skipped.append((name, "a non-directory cannot replace the root"))
                continue
            if kind == "dir":
                existing = paths.get(path)
                if existing is not None and existing in children:
                    entries[existing] = entry  # a later dir entry: new attributes, same children
                    if existing == ROOT:
                        self._root_given = True
                    continue
                children[node] = {}
            elif kind == "hardlink":
                target = paths.get(clean(entry.linkname))
                if target is None or target in children:
                    what = "is not in the layer before it" if target is None else "is a directory"
                    skipped.append((entry.name, f"hard link target {entry.linkname!r} {what}"))
                    continue
                node = target
            parent_path, _, base = path.rpartition("/")
            if parent_path != last_parent_path:
                parent = paths.get(parent_path)
                if parent is None or parent not in children:
                    parent = self._make_dirs(parent_path)
                    if parent is None:
                        skipped.append((entry.name, "a parent path is not a directory"))
                        children.pop(node, None)
                        last_parent_path = None
                        continue
                siblings = children[parent]
                last_parent_path = parent_path
            replaced = siblings.get(base)
            siblings[base] = node
            paths[path] = node
            if kind == "hardlink":
                nlink[node] += 1
            if replaced is not None and replaced != node and replaced in children:
                self._drop_subtree(path, replaced)
                last_parent_path = None  # the cached parent may have gone with the subtree
        is_dir = children.__contains__
        for dir_node, kids in children.items():
            nlink[dir_node] = 2 + sum(map(is_dir, kids.values()))
        self.skipped = tuple(skipped)

    def _make_dirs(self, path: str) -> int | None:
        """The directory node at `path`, creating it and missing ancestors; None when a
        component is not a directory."""
        missing: list[str] = []
        node = self._paths.get(path)
        while node is None:
            missing.append(path)
            path = path.rpartition("/")[0]
            node = self._paths.get(path)
        if node not in self._children:
            return None
        for dir_path in reversed(missing):
            new = len(self._entries)
            self._entries.append(_synthesized_dir(dir_path))
            self._nlink.append(2)
            self._children[new] = {}
            self._children[node][dir_path.rpartition("/")[2]] = new
            self._paths[dir_path] = new
            node = new
        return node

    def _drop_subtree(self, path: str, node: int) -> None:
        """Forget the paths under a directory that a non-directory (or new node) replaced."""
        stack = [(path, node)]
        while stack:
            dir_path, dir_node = stack.pop()
            for name, kid in self._children.pop(dir_node, {}).items():
                kid_path = f"{dir_path}/{name}" if dir_path else name
                if self._paths.get(kid_path) == kid:
                    del self._paths[kid_path]
                if kid in self._children:
                    stack.append((kid_path, kid))

    # -- by path ----------------------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of paths in the tree, the root included."""
        return len(self._paths)

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and clean_name(path) in self._paths

    def __iter__(self) -> Iterator[str]:
        """Every cleaned path, parents before their children."""
        return iter(self._paths)

    def node_of(self, path: str) -> int | None:
        """The node at `path`, or None."""
        return self._paths.get(clean_name(path))

    def lookup(self, path: str) -> FileMetadata | None:
        """The entry at `path` (a hard link's target entry), or None."""
        node = self._paths.get(clean_name(path))
        return None if node is None else self._entries[node]

    def entry(self, path: str) -> FileMetadata:
        """The entry at `path` (a hard link's target entry); FileNotInZtocError when there is none."""
        node = self._paths.get(clean_name(path))
        if node is None:
            raise FileNotInZtocError(f"{path!r} is not in the ztoc")
        return self._entries[node]

    def list_dir(self, path: str) -> dict[str, int]:
        """Name → node of a directory's children (in TOC order); FileNotInZtocError when `path`
        is not a directory of the tree."""
        node = self._paths.get(clean_name(path))
        kids = None if node is None else self._children.get(node)
        if kids is None:
            raise FileNotInZtocError(f"{path!r} is not a directory in the ztoc")
        return dict(kids)

    # -- by node ----------------------------------------------------------------------------------

    def entry_of(self, node: int) -> FileMetadata:
        """The entry of a node (for a directory, its latest `dir` entry or a synthesized one)."""
        return self._entries[node]

    def children(self, node: int) -> dict[str, int] | None:
        """Name → node of a directory node's children, or None for a non-directory. The mapping is
        the index's own: do not change it."""
        return self._children.get(node)

    def child(self, node: int, name: str) -> int | None:
        """The node called `name` in directory `node`, or None (the FUSE lookup)."""
        kids = self._children.get(node)
        return None if kids is None else kids.get(name)

    def is_dir(self, node: int) -> bool:
        return node in self._children

    def nlink(self, node: int) -> int:
        return self._nlink[node]

    def is_synthesized(self, node: int) -> bool:
        """True for a directory made up because the TOC has an entry below it but none for it."""
        return node >= self._first_synthesized or (node == ROOT and not self._root_given)


def _index_of(ztoc: Ztoc) -> TocIndex:
    return TocIndex(ztoc.toc)


toc_index = PerZtoc(_index_of)
"""`toc_index(ztoc)`: the ztoc's TocIndex, built on first use and kept while the ztoc lives."""
