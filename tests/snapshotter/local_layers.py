"""TEST DOUBLE of the lazy-layer filesystem: serves layers already unpacked into plain local
directories, so the snapshotter's remote-snapshot path (already-exists answer, re-mount at start,
release on remove) runs end to end through real containerd before the FUSE layers exist.

The daemon loads it only from the test suite: `SOCIKIT_SNAPSHOTTER_TEST_LAYER_FS=
tests.snapshotter.local_layers:make` (socikit.snapshotter.fs refuses modules outside `tests.`),
with `SOCIKIT_TEST_LOCAL_LAYERS` naming a JSON file `{chain_id: directory}`, read at every call so a
test can change it. Every call is appended to `<that file>.calls` as a JSON line.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

LAYERS_ENV = "SOCIKIT_TEST_LOCAL_LAYERS"
SPEC = "tests.snapshotter.local_layers:make"


class LocalDirectoryLayers:
    def __init__(self, table: Path) -> None:
        self.table = table
        self.calls = Path(str(table) + ".calls")

    def _record(self, op: str, name: str) -> None:
        with open(self.calls, "a", encoding="utf-8") as out:
            out.write(json.dumps({"op": op, "name": name}) + "\n")

    def _dirs(self) -> dict[str, str]:
        try:
            table: dict[str, str] = json.loads(self.table.read_text())
        except FileNotFoundError:
            return {}
        return table

    def mount(self, name: str, labels: Mapping[str, str]) -> Path | None:
        self._record("mount", name)
        directory = self._dirs().get(name)
        return Path(directory) if directory and Path(directory).is_dir() else None

    def check(self, name: str, labels: Mapping[str, str]) -> bool:
        directory = self._dirs().get(name)
        return bool(directory) and Path(directory).is_dir()

    def unmount(self, name: str) -> None:
        self._record("unmount", name)

    async def serve(self, *, task_status: Any) -> None:
        import trio

        task_status.started()
        await trio.sleep_forever()


def make(**_: Any) -> LocalDirectoryLayers:
    return LocalDirectoryLayers(Path(os.environ[LAYERS_ENV]))


def read_calls(table: Path) -> list[dict[str, str]]:
    path = Path(str(table) + ".calls")
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """containerd's chain IDs: the first diff ID, then sha256("<previous chain ID> <diff ID>")."""
    chain: list[str] = []
    for diff_id in diff_ids:
        chain.append(diff_id if not chain else
                     "sha256:" + hashlib.sha256(f"{chain[-1]} {diff_id}".encode()).hexdigest())
    return chain


def unpack_layer(tar_bytes: bytes, dest: Path) -> None:
    """Unpack an (uncompressed) layer tar the way an overlay lower directory holds it: whiteouts
    as 0/0 character devices, opaque directories marked `trusted.overlay.opaque=y`, PAX xattrs
    set, owners and modes kept."""
    dest.mkdir(parents=True, exist_ok=True)
    dirs: list[tuple[Path, tarfile.TarInfo]] = []
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
        for member in tar:
            name = os.path.normpath(member.name).lstrip("/")
            if name in ("", "."):
                continue
            target = dest / name
            parent, base = target.parent, target.name
            parent.mkdir(parents=True, exist_ok=True)
            if base == ".wh..wh..opq":
                os.setxattr(parent, "trusted.overlay.opaque", b"y")
                continue
            if base.startswith(".wh."):
                os.mknod(parent / base[4:], stat.S_IFCHR | 0o000, os.makedev(0, 0))
                continue
            if target.is_symlink() or (target.exists() and not target.is_dir()):
                target.unlink()
            if member.isdir():
                target.mkdir(exist_ok=True)
                dirs.append((target, member))
            elif member.isreg():
                extracted = tar.extractfile(member)
                assert extracted is not None
                target.write_bytes(extracted.read())
            elif member.issym():
                os.symlink(member.linkname, target)
            elif member.islnk():
                os.link(dest / os.path.normpath(member.linkname).lstrip("/"), target)
                continue
            elif member.ischr() or member.isblk() or member.isfifo():
                kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK if member.isblk() else stat.S_IFIFO
                os.mknod(target, kind | member.mode, os.makedev(member.devmajor, member.devminor))
            os.lchown(target, member.uid, member.gid)
            if not member.issym():
                os.chmod(target, member.mode)
            for key, value in member.pax_headers.items():
                if key.startswith("SCHILY.xattr."):
                    os.setxattr(target, key.removeprefix("SCHILY.xattr."),
                                value.encode("utf-8", "surrogateescape"), follow_symlinks=False)
            if not member.isdir():
                os.utime(target, (member.mtime, member.mtime), follow_symlinks=False)
    for directory, member in reversed(dirs):
        os.utime(directory, (member.mtime, member.mtime))
