"""LayerTree: what a lazily mounted layer shows, from its ztoc alone."""

from __future__ import annotations

import os
import stat

import pytest

from socikit.errors import FormatError
from socikit.lazy.tree import LayerTree, mod_time_ns
from tests.images import TarBuilder
from tests.lazy.layers import every_kind, make_layer


@pytest.fixture(scope="module")
def tree() -> LayerTree:
    return LayerTree(make_layer(every_kind()).ztoc)


def walk(tree: LayerTree, path: str) -> int:
    node = 0
    for part in filter(None, path.split("/")):
        found = tree.lookup(node, part)
        assert found is not None, f"{path}: no {part}"
        node = found
    return node


def test_regular_files_dirs_and_symlinks(tree: LayerTree) -> None:
    big = tree.attributes(walk(tree, "etc/big.bin"))
    assert (big.mode, big.size, big.uid, big.gid, big.nlink) == (stat.S_IFREG | 0o644, 400_000, 0, 0, 1)
    assert big.mtime_ns == 1_700_000_000 * 10**9
    assert big.blocks == (400_000 + 511) // 512
    assert tree.attributes(walk(tree, "etc/suid")).mode == stat.S_IFREG | 0o4755
    etc = tree.attributes(walk(tree, "etc"))
    assert etc.mode == stat.S_IFDIR | 0o755 and etc.size == 4096
    link = walk(tree, "etc/link")
    assert tree.attributes(link).mode == stat.S_IFLNK | 0o777
    assert tree.attributes(link).size == len("small.txt")
    assert tree.readlink(link) == b"small.txt"
    assert tree.readlink(walk(tree, "etc/big.bin")) is None
    offset, size = tree.file_range(walk(tree, "etc/big.bin")) or (0, 0)
    assert size == 400_000 and offset > 0
    assert tree.file_range(walk(tree, "etc")) is None


def test_hard_link_shares_the_inode_with_the_link_entry_attributes(tree: LayerTree) -> None:
    small, hard = walk(tree, "etc/small.txt"), walk(tree, "etc/hard")
    assert small == hard
    attrs = tree.attributes(small)
    # containerd's applier chmods/chowns/chtimes after making the link: the link entry wins
    assert (attrs.mode, attrs.uid, attrs.gid, attrs.nlink, attrs.size) == (stat.S_IFREG | 0o600, 7, 8, 2, 6)
    assert attrs.mtime_ns == 1_700_000_100 * 10**9


def test_devices_and_fifos(tree: LayerTree) -> None:
    null = tree.attributes(walk(tree, "dev/null"))
    assert null.mode == stat.S_IFCHR | 0o660 and null.rdev == os.makedev(1, 3)
    assert tree.attributes(walk(tree, "dev/sda")).rdev == os.makedev(8, 0)
    assert tree.attributes(walk(tree, "dev/big")).rdev == os.makedev(4096, 300000)
    pipe = tree.attributes(walk(tree, "dev/pipe"))
    assert pipe.mode == stat.S_IFIFO | 0o660 and pipe.rdev == 0


def test_xattrs(tree: LayerTree) -> None:
    big = walk(tree, "etc/big.bin")
    assert sorted(tree.xattr_names(big)) == [b"user.bin", b"user.note"]
    assert tree.xattr(big, b"user.bin") == b"\x00\xff"
    assert tree.xattr(big, b"user.none") is None
    assert tree.xattr_names(walk(tree, "etc/small.txt")) == []


def test_whiteouts_and_opaque_dirs(tree: LayerTree) -> None:
    etc = walk(tree, "etc")
    names = [name for name, _ in tree.entries(etc)]
    assert "gone" in names and ".wh.gone" not in names
    gone = walk(tree, "etc/gone")
    assert tree.is_whiteout(gone)
    attrs = tree.attributes(gone)
    assert (attrs.mode, attrs.rdev, attrs.size) == (stat.S_IFCHR, 0, 0)
    assert tree.file_range(gone) is None and tree.xattr_names(gone) == []
    var = walk(tree, "var")
    assert [name for name, _ in tree.entries(var)] == ["opq", "both"]  # the whiteout of a real file is hidden
    assert not tree.is_whiteout(walk(tree, "var/both"))
    opq = walk(tree, "var/opq")
    assert [name for name, _ in tree.entries(opq)] == ["kept"]
    assert tree.lookup(opq, ".wh..wh..opq") is None
    assert tree.xattr_names(opq) == [b"trusted.overlay.opaque"]
    assert tree.xattr(opq, b"trusted.overlay.opaque") == b"y"
    assert tree.xattr(opq, b"user.overlay.opaque") == b"y"  # asked for, not listed
    assert tree.xattr(var, b"trusted.overlay.opaque") is None


def test_a_first_layer_hides_whiteouts_and_opaque_markers() -> None:
    bottom = LayerTree(make_layer(every_kind()).ztoc, bottom=True)
    etc = walk(bottom, "etc")
    assert "gone" not in [name for name, _ in bottom.entries(etc)] and bottom.lookup(etc, "gone") is None
    assert [name for name, _ in bottom.entries(walk(bottom, "var"))] == ["opq", "both"]
    opq = walk(bottom, "var/opq")
    assert [name for name, _ in bottom.entries(opq)] == ["kept"]
    assert bottom.xattr_names(opq) == [] and bottom.xattr(opq, b"trusted.overlay.opaque") is None


def test_parents_and_root(tree: LayerTree) -> None:
    assert tree.parent(walk(tree, "etc/big.bin")) == walk(tree, "etc")
    assert tree.parent(walk(tree, "etc")) == 0 and tree.parent(0) == 0
    assert tree.is_dir(0) and {"etc", "dev", "var"} <= {n for n, _ in tree.entries(0)}
    assert tree.node_count > len(list(tree.index)) - 1


def test_disabled_xattrs() -> None:
    b = TarBuilder()
    b.file("f", b"x", xattrs={"user.a": b"1"})
    quiet = LayerTree(make_layer(b).ztoc, xattrs=False)
    node = quiet.lookup(0, "f")
    assert node is not None and quiet.xattr_names(node) == [] and quiet.xattr(node, b"user.a") is None


def test_a_toc_the_tree_cannot_hold_is_refused() -> None:
    b = TarBuilder()
    b.file("a", b"x")
    b.hardlink("b", "missing")
    with pytest.raises(FormatError, match="missing"):
        LayerTree(make_layer(b).ztoc)


@pytest.mark.parametrize(("text", "expected"), [
    ("2023-11-14T22:13:20Z", 1_700_000_000 * 10**9),
    ("2023-11-14T22:13:20.5Z", 1_700_000_000 * 10**9 + 500_000_000),
    ("2023-11-14T22:13:20.123456789Z", 1_700_000_000 * 10**9 + 123_456_789),
    ("2023-11-14T23:13:20.000000001+01:00", 1_700_000_000 * 10**9 + 1),
    ("2023-11-14T17:13:20-05:00", 1_700_000_000 * 10**9),
    ("0001-01-01T00:00:00Z", 0),  # Go's zero time: containerd clamps to the epoch
    ("", 0),
])
def test_mod_time(text: str, expected: int) -> None:
    assert mod_time_ns(text) == expected


def test_mod_time_refuses_garbage() -> None:
    with pytest.raises(FormatError):
        mod_time_ns("yesterday")
