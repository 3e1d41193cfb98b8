"""`ztoc.index.TocIndex`: the layer tree a lazy mount shows, built once per ztoc with the
snapshotter's rules (cleaned names, synthesized parents, later dir entries, hard links)."""

from __future__ import annotations

import io
import posixpath
import random

import pytest

from socikit.errors import FileNotInZtocError
from socikit.ztoc import index as index_module
from socikit.ztoc.builder import build_ztoc
from socikit.ztoc.extract import find_entry
from socikit.ztoc.index import ROOT, TocIndex, clean_name, toc_index
from socikit.ztoc.model import FileMetadata
from tests.ztoc_trees import gzip_member, regular_files, seeded_tar


def _entry(
    name: str, kind: str = "reg", *, linkname: str = "", size: int = 0, mode: int = 0o644, offset: int = 0
) -> FileMetadata:
    return FileMetadata(name, kind, offset, size, linkname, mode, 0, 0, "", "", "2024-01-01T00:00:00Z", 0, 0, ())


def _reference_clean(name: str) -> str:
    """Go's filepath.Clean("/" + name) minus the leading '/', spelled out rule by rule."""
    parts: list[str] = []
    for part in ("/" + name).split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/".join(parts)


def test_clean_name_matches_filepath_clean() -> None:
    rng = random.Random(5)
    pieces = ["", ".", "..", "...", ".a", "a.", "a", "bin", "..b", "/", "//", "./", "a./", ".wh.x"]
    names = [
        "./",
        "/",
        "",
        ".",
        "..",
        "./usr/bin/",
        "usr//lib",
        "a/./b",
        "a/../../b",
        "/etc/passwd",
        "...",
        "a/.../b/",
        ".wh..wh..opq",
        "x/.wh.y",
    ]
    for _ in range(20000):
        names.append("/".join(rng.choice(pieces) for _ in range(rng.randint(1, 6))))
    for name in names:
        assert clean_name(name) == _reference_clean(name) == posixpath.normpath("/" + name).lstrip("/"), name


def test_tree_rules() -> None:
    toc = [
        _entry("./", "dir", mode=0o700),
        _entry("./usr/", "dir", mode=0o755),
        _entry("./usr/bin/tool", size=10, offset=512),  # usr/bin is synthesized
        _entry("usr/bin/", "dir", mode=0o711),  # later dir entry: attributes only
        _entry("./usr/bin/tool2", "hardlink", linkname="usr/bin/tool"),
        _entry("usr/bin/tool3", "hardlink", linkname="./usr/bin/tool2"),  # link to a link
        _entry("opt/x/y/z", size=3, offset=1536),  # three synthesized parents
        _entry("etc/", "dir"),
        _entry("etc/conf", size=1, offset=2560),
        _entry("etc", "symlink", linkname="/elsewhere"),  # replaces the directory and its subtree
        _entry("bad1", "hardlink", linkname="not/there"),
        _entry("bad2", "hardlink", linkname="later"),
        _entry("later", size=1, offset=3584),
        _entry("bad3", "hardlink", linkname="usr"),
        _entry("later/below", size=1, offset=4096),  # parent is a file
        _entry("/", "reg"),  # a file cannot be the root
        _entry("a//b/../c", size=2, offset=4608),
        _entry("usr/bin/tool", size=99, offset=5120),  # replaces the file; old links stay
    ]
    index = TocIndex(toc)
    assert index.entry_of(ROOT).mode == 0o700 and not index.is_synthesized(ROOT)
    assert index.lookup("/usr/bin").mode == 0o711  # type: ignore[union-attr]
    assert index.is_synthesized(index.node_of("usr/bin"))  # type: ignore[arg-type]
    assert index.lookup("opt/x/y").type == "dir" and index.lookup("opt/x/y").mode == 0o755  # type: ignore[union-attr]
    old_tool = index.node_of("usr/bin/tool2")
    assert old_tool == index.node_of("usr/bin/tool3") == 3  # TOC entry 2 -> node 3
    assert index.nlink(old_tool) == 3  # type: ignore[arg-type]
    assert index.entry_of(old_tool).uncompressed_offset == 512  # type: ignore[arg-type]
    assert index.entry("usr/bin/tool").uncompressed_size == 99
    assert index.nlink(index.node_of("usr/bin/tool")) == 1  # type: ignore[arg-type]
    assert index.lookup("etc").type == "symlink" and index.lookup("etc/conf") is None  # type: ignore[union-attr]
    assert "etc/conf" not in index and "a/c" in index and "./a/c" in index
    assert list(index.list_dir("usr/bin")) == ["tool", "tool2", "tool3"]
    assert list(index.list_dir("")) == ["usr", "opt", "etc", "later", "a"]
    assert index.child(ROOT, "usr") == index.node_of("usr") and index.child(ROOT, "nope") is None
    assert index.children(index.node_of("etc")) is None  # type: ignore[arg-type]
    # Directories: 2 + subdirectories.
    assert index.nlink(ROOT) == 2 + 3  # usr, opt, a
    assert index.nlink(index.node_of("usr")) == 3  # type: ignore[arg-type]
    skipped = dict(index.skipped)
    assert set(skipped) == {"bad1", "bad2", "bad3", "later/below", "/"}
    assert "not in the layer before it" in skipped["bad2"] and "is a directory" in skipped["bad3"]
    assert "not a directory" in skipped["later/below"]
    with pytest.raises(FileNotInZtocError):
        index.entry("bad1")
    with pytest.raises(FileNotInZtocError, match="not a directory"):
        index.list_dir("usr/bin/tool")
    assert set(index) == {
        "",
        "usr",
        "usr/bin",
        "usr/bin/tool",
        "usr/bin/tool2",
        "usr/bin/tool3",
        "opt",
        "opt/x",
        "opt/x/y",
        "opt/x/y/z",
        "etc",
        "later",
        "a",
        "a/c",
    }
    assert len(index) == 14


def test_root_is_synthesized_without_a_dot_entry() -> None:
    index = TocIndex([_entry("a", size=1)])
    assert index.is_synthesized(ROOT) and index.entry_of(ROOT).type == "dir" and index.nlink(ROOT) == 2


def test_a_real_layer(tmp_path) -> None:
    tar = seeded_tar(31, files=150)
    blob = gzip_member(tar)
    ztoc = build_ztoc(io.BytesIO(blob), span_size=65536, build_tool_identifier="t").ztoc
    index = toc_index(ztoc)
    assert index.skipped == ()
    files = regular_files(tar)
    for name, content in files.items():
        entry = index.entry(name)
        assert entry.type == "reg" and entry.uncompressed_size == len(content)
        parent = posixpath.dirname(clean_name(name))
        assert posixpath.basename(clean_name(name)) in index.list_dir(parent)
    for entry in ztoc.toc:
        assert clean_name(entry.name) in index
    # Every path's parent is a directory of the tree that lists it.
    for path in index:
        if path:
            parent, _, base = path.rpartition("/")
            assert index.child(index.node_of(parent), base) == index.node_of(path)  # type: ignore[arg-type]


def test_find_entry_uses_one_index_per_ztoc(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[int] = []

    class Counting(TocIndex):
        def __init__(self, toc):  # type: ignore[no-untyped-def]
            built.append(len(toc))
            super().__init__(toc)

    monkeypatch.setattr(index_module, "TocIndex", Counting)
    tar = seeded_tar(32, files=40)
    ztoc = build_ztoc(io.BytesIO(tar), algorithm="uncompressed", span_size=65536, build_tool_identifier="t").ztoc
    names = [e.name for e in ztoc.toc if e.type == "reg"]
    for _ in range(3):
        for name in names:
            assert find_entry(ztoc, name).name == name
    assert built == [len(ztoc.toc)]
    with pytest.raises(FileNotInZtocError):
        find_entry(ztoc, "no/such/file")


def test_two_hundred_thousand_entries() -> None:
    """The size of a large layer: builds, and every name resolves (speed is in docs/design.md)."""
    toc = []
    for d in range(400):
        toc.append(_entry(f"./d{d}/", "dir"))
        for f in range(499):
            toc.append(_entry(f"./d{d}/sub/f{f}", offset=512 * (d * 500 + f)))
    index = TocIndex(toc)
    assert len(toc) == 200_000 and len(index) == 1 + 400 * 2 + 400 * 499
    assert index.is_synthesized(index.node_of("d7/sub"))  # type: ignore[arg-type]
    assert len(index.list_dir("d399/sub")) == 499
    assert index.entry("d123/sub/f77").uncompressed_offset == 512 * (123 * 500 + 77)
