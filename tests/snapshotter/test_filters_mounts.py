"""containerd filter expressions and the mount shapes containerd gets."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from socikit.errors import SnapshotArgumentError
from socikit.snapshotter.filters import matches_any, parse_filter, parse_filters
from socikit.snapshotter.mounts import Mount, snapshot_mounts

INFO = {"name": "sha256:aa", "parent": "default/3/sha256:bb", "kind": "committed"}
LABELS = {"containerd.io/snapshot.ref": "sha256:aa", "x": "1", "weird key": 'a,b "c"'}


def lookup(path: Sequence[str]) -> tuple[str, bool]:
    if len(path) == 1 and path[0] in INFO:
        return INFO[path[0]], True
    if len(path) == 2 and path[0] == "labels" and path[1] in LABELS:
        return LABELS[path[1]], True
    return "", False


@pytest.mark.parametrize(("text", "expected"), [
    # the form containerd's metadata store sends after an "already exists" answer
    ('labels."containerd.io/snapshot.ref"==sha256:aa,parent=="default/3/sha256:bb"', True),
    ('labels."containerd.io/snapshot.ref"==sha256:aa,parent==""', False),
    ("kind==committed", True),
    ("kind==active", False),
    ("kind!=active", True),
    ("name~=/^sha256:a+$/", True),
    ("name~=|b+|", False),
    ('name~="^sha"', True),
    ("labels.x", True),
    ("labels.missing", False),
    ("labels.missing!=1", True),  # != holds for an absent field, as in containerd
    ("labels.x==1 , kind==committed", True),
    (r'labels."weird key"=="a,b \"c\""', True),
    (r'name=="sha256:\x61a"', True),
    ("parent==default/3/sha256:bb", True),
    ("nosuchfield==x", False),
])
def test_filter_matches(text: str, expected: bool) -> None:
    assert parse_filter(text).matches(lookup) is expected


def test_filter_strings_are_ored_and_empty_means_everything() -> None:
    assert matches_any(parse_filters(["kind==view", "name==sha256:aa"]), lookup)
    assert not matches_any(parse_filters(["kind==view", "name==other"]), lookup)
    assert matches_any(parse_filters([]), lookup)
    assert matches_any(parse_filters(["", "  "]), lookup)


@pytest.mark.parametrize("text", ["==x", "a==", 'a=="x', "a~=/(/", "a.==b", "a==b c", r'a=="\q"', "a b"])
def test_bad_filters_are_invalid_argument(text: str) -> None:
    with pytest.raises(SnapshotArgumentError, match="filter"):
        parse_filter(text)


def test_mount_shapes_follow_containerds_overlay_snapshotter(tmp_path: Path) -> None:
    up, work = tmp_path / "9/fs", tmp_path / "9/work"
    l1, l2 = tmp_path / "2/fs", Path("/served/layer")
    # no parent: a bind mount of the snapshot's own directory
    assert snapshot_mounts(active=True, upper=up, work=work, lowers=[], index_off=True) == [
        Mount("bind", str(up), ("rw", "rbind"))]
    assert snapshot_mounts(active=False, upper=up, work=work, lowers=[], index_off=True) == [
        Mount("bind", str(up), ("ro", "rbind"))]
    # a view of one layer: that layer, read-only
    assert snapshot_mounts(active=False, upper=up, work=work, lowers=[l2], index_off=False) == [
        Mount("bind", str(l2), ("ro", "rbind"))]
    # an active snapshot on layers: overlay, nearest parent first
    assert snapshot_mounts(active=True, upper=up, work=work, lowers=[l2, l1], index_off=True) == [
        Mount("overlay", "overlay", ("index=off", f"workdir={work}", f"upperdir={up}", f"lowerdir={l2}:{l1}"))]
    assert snapshot_mounts(active=True, upper=up, work=work, lowers=[l1], index_off=False) == [
        Mount("overlay", "overlay", (f"workdir={work}", f"upperdir={up}", f"lowerdir={l1}"))]
    # a view of several layers: overlay without an upper directory (read-only)
    assert snapshot_mounts(active=False, upper=up, work=work, lowers=[l2, l1], index_off=False) == [
        Mount("overlay", "overlay", (f"lowerdir={l2}:{l1}",))]
