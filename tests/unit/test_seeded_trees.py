"""The seeded test trees of tests/layers.py hold what the layer tests rely on, the same way on every
machine: determinism, every kind of entry, mixed compressibility, a long-tailed size distribution."""

from __future__ import annotations

import io
import statistics
import tarfile
import zlib

from tests.layers import seeded_tar, seeded_tree, tar_members, tree_tar


def test_a_seed_gives_the_same_tar_every_time_and_seeds_differ() -> None:
    assert seeded_tar(5, total_bytes=1 << 20) == seeded_tar(5, total_bytes=1 << 20)
    assert seeded_tar(5, total_bytes=1 << 20) != seeded_tar(6, total_bytes=1 << 20)


def test_every_kind_of_entry_is_present_and_survives_tar() -> None:
    tree = seeded_tree(3, total_bytes=1 << 20)
    data = tree_tar(tree)
    assert tree.file_bytes >= 1 << 20
    assert tar_members(data) == tree.files
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == [e.name.rstrip("/") for e in tree.entries]
    kinds = {m.type for m in members}
    assert {tarfile.DIRTYPE, tarfile.REGTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE} <= kinds
    assert any(m.isreg() and m.size == 0 for m in members)
    assert any(len(m.name.encode()) > 100 for m in members)  # needs a PAX path record
    assert any(not m.name.isascii() for m in members)
    assert any(m.issym() and m.linkname.startswith("/") for m in members)
    assert any(m.issym() and m.linkname.startswith("../") for m in members)
    hard = [m for m in members if m.islnk()]
    assert all(m.linkname in tree.files for m in hard)
    assert max(m.name.count("/") for m in members) >= 2


def test_content_has_mixed_compressibility_and_a_long_tail_of_sizes() -> None:
    tree = seeded_tree(7, total_bytes=4 << 20)
    sizes = [len(d) for d in tree.files.values()]
    assert len(sizes) >= 100
    assert statistics.median(sizes) < 8192 < 256 << 10 < max(sizes)
    ratios = [len(zlib.compress(d, 6)) / len(d) for d in tree.files.values() if len(d) >= 4096]
    assert any(r < 0.2 for r in ratios)  # sparse and structured data
    assert any(0.25 < r < 0.8 for r in ratios)  # text
    assert any(r > 0.99 for r in ratios)  # random bytes: deflate stores them
