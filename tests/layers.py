"""Layers for tests: directory trees generated from a seed, packed as tars and compressed the ways
images are.

Test layers used to be tars of the running interpreter's stdlib directory. In a virtualenv that
directory holds no stdlib, so tests silently ran over an empty tar (or over pip's files). A seeded
tree is the same on every machine and in every environment: many small files and a few large ones
(a log-normal size distribution, as in real images), text-like, structured-binary, sparse and
random content (so compressibility is mixed), nested directories, symlinks (relative, absolute,
dangling), hard links, long and non-ASCII names, assorted modes, owners and times.
"""

from __future__ import annotations

import gzip
import io
import random
import shutil
import struct
import subprocess
import tarfile
import zlib
from dataclasses import dataclass, field

MTIME_BASE = 1_700_000_000


@dataclass(frozen=True, slots=True)
class TreeEntry:
    """One member of a generated tree. `kind` is dir, file, symlink or hardlink; `target` is the
    link target (for a hard link: the name of an earlier regular file)."""

    name: str
    kind: str
    data: bytes = field(default=b"", repr=False)
    target: str = ""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime: int = MTIME_BASE


@dataclass(frozen=True, slots=True)
class Tree:
    seed: int
    entries: tuple[TreeEntry, ...]

    @property
    def files(self) -> dict[str, bytes]:
        """name -> content of every regular file (hard links excluded)."""
        return {e.name: e.data for e in self.entries if e.kind == "file"}

    @property
    def file_bytes(self) -> int:
        return sum(len(e.data) for e in self.entries if e.kind == "file")

    def count(self, kind: str) -> int:
        return sum(1 for e in self.entries if e.kind == kind)


_OWNERS = ((0, 0), (0, 0), (0, 0), (1000, 1000), (65534, 65534), (33, 33))
_TOP_DIRS = ("usr", "etc", "var", "opt", "srv", "app")
_EXOTIC_NAMES = ("café", "naïve-ü", "日本語", "space name", "dash-and.dots", "UPPER_lower")


class _Generator:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        letters = "abcdefghijklmnopqrstuvwxyz"
        self.vocabulary = ["".join(self.rng.choices(letters, k=self.rng.randint(2, 10))) for _ in range(3000)] + [
            "def",
            "return",
            "import",
            "class",
            "if",
            "else",
            "for",
            "self",
            "None",
            "{",
            "}",
            "=",
            "(",
            ")",
        ]

    def name(self) -> str:
        rng = self.rng
        roll = rng.random()
        if roll < 0.03:
            return rng.choice(_EXOTIC_NAMES) + str(rng.randint(0, 99))
        if roll < 0.05:  # over 100 bytes with its directory: needs a PAX path record
            return "long-" + "n" * rng.randint(90, 140)
        stem = "".join(rng.choices("abcdefghijklmnopqrstuvwxyz0123456789_", k=rng.randint(3, 14)))
        return stem + rng.choice(("", ".py", ".txt", ".json", ".so", ".conf", ".dat", ".gz", ".h"))

    def size(self, cap: int) -> int:
        if self.rng.random() < 0.05:
            return 0
        # Median ~2.4 KiB, a long tail of large files (libraries, data files).
        return min(cap, int(self.rng.lognormvariate(7.8, 2.0)))

    def content(self, size: int) -> bytes:
        rng = self.rng
        kind = rng.choices(("text", "structured", "random", "sparse"), weights=(50, 20, 20, 10))[0]
        if size == 0:
            return b""
        if kind == "text":
            words = rng.choices(self.vocabulary, k=size // 5 + 2)
            lines = []
            for i in range(0, len(words), 12):
                lines.append("    " * rng.randint(0, 3) + " ".join(words[i : i + 12]))
            return "\n".join(lines).encode()[:size].ljust(size, b"\n")
        if kind == "structured":
            base = rng.randrange(1 << 32)
            records = b"".join(
                struct.pack("<IIHH", base + i, i * 8, rng.randrange(16), 0xBEEF) for i in range(size // 12 + 1)
            )
            return records[:size]
        if kind == "random":  # like an already compressed file: deflate stores it
            return rng.randbytes(size)
        out = bytearray(size)
        for _ in range(max(1, size // 512)):
            out[rng.randrange(size)] = rng.randrange(1, 256)
        return bytes(out)

    def tree(self, total_bytes: int) -> tuple[TreeEntry, ...]:
        rng = self.rng
        entries: list[TreeEntry] = []
        dirs: list[str] = []
        regular: list[str] = []
        cap = max(1, min(3 << 20, total_bytes // 5))

        def mtime() -> int:
            return MTIME_BASE + rng.randrange(0, 86400 * 365)

        def add_dir(parent: str | None) -> str:
            name = rng.choice(_TOP_DIRS) if parent is None else f"{parent}/{self.name().split('.')[0] or 'd'}"
            if name in dirs:
                return name
            uid, gid = rng.choice(_OWNERS)
            entries.append(
                TreeEntry(
                    name + "/", "dir", mode=rng.choice((0o755, 0o755, 0o700, 0o1777)), uid=uid, gid=gid, mtime=mtime()
                )
            )
            dirs.append(name)
            return name

        names: set[str] = set()
        total = 0
        while total < total_bytes:
            roll = rng.random()
            if not dirs or roll < 0.08:
                parent = rng.choice(dirs) if dirs and rng.random() < 0.85 else None
                if parent is None or parent.count("/") < 7:
                    add_dir(parent)
                continue
            name = f"{rng.choice(dirs)}/{self.name()}"
            if name in names or name + "/" in names or name in dirs:
                continue
            names.add(name)
            uid, gid = rng.choice(_OWNERS)
            if roll < 0.11 and (regular or dirs):
                target_kind = rng.random()
                if target_kind < 0.5 and regular:  # relative, to a file
                    target = "../" * name.count("/") + rng.choice(regular)
                elif target_kind < 0.8:  # absolute, to a directory
                    target = "/" + rng.choice(dirs)
                else:
                    target = "no/such/target"
                entries.append(TreeEntry(name, "symlink", target=target, mode=0o777, uid=uid, gid=gid, mtime=mtime()))
            elif roll < 0.13 and regular:
                entries.append(TreeEntry(name, "hardlink", target=rng.choice(regular), uid=uid, gid=gid, mtime=mtime()))
            else:
                data = self.content(self.size(cap))
                mode = rng.choice((0o644, 0o644, 0o644, 0o755, 0o600, 0o4755))
                entries.append(TreeEntry(name, "file", data=data, mode=mode, uid=uid, gid=gid, mtime=mtime()))
                regular.append(name)
                total += len(data)
        # Every tree, however small, has each corner at least once.
        if not dirs:
            add_dir(None)
        home = dirs[-1]
        if regular:
            entries.append(TreeEntry(f"{home}/corner-hardlink", "hardlink", target=regular[0]))
            up = "../" * (home.count("/") + 1)
            entries.append(TreeEntry(f"{home}/corner-symlink", "symlink", target=up + regular[0], mode=0o777))
        entries.append(TreeEntry(f"{home}/corner-absolute", "symlink", target="/" + dirs[0], mode=0o777))
        entries.append(TreeEntry(f"{home}/corner-dangling", "symlink", target="../no/such/file", mode=0o777))
        entries.append(TreeEntry(f"{home}/corner-empty", "file"))
        entries.append(TreeEntry(f"{home}/corner-{'long' * 30}.txt", "file", data=self.content(300)))
        entries.append(TreeEntry(f"{home}/corner-ünïcödé-名前", "file", data=self.content(700)))
        return tuple(entries)


def seeded_tree(seed: int, *, total_bytes: int) -> Tree:
    """A deterministic pseudo-random tree whose regular files hold at least `total_bytes`."""
    return Tree(seed=seed, entries=_Generator(seed).tree(total_bytes))


def tree_tar(tree: Tree) -> bytes:
    """The tree as a PAX tar, members in generation order (every directory before its contents)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in tree.entries:
            info = tarfile.TarInfo(entry.name)
            info.mode, info.uid, info.gid, info.mtime = entry.mode, entry.uid, entry.gid, entry.mtime
            info.uname = info.gname = "root" if entry.uid == 0 else f"u{entry.uid}"
            if entry.kind == "dir":
                info.type = tarfile.DIRTYPE
            elif entry.kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, entry.target
            elif entry.kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, entry.target
            else:
                info.size = len(entry.data)
            tar.addfile(info, io.BytesIO(entry.data) if entry.kind == "file" else None)
    return buf.getvalue()


def seeded_tar(seed: int, *, total_bytes: int) -> bytes:
    return tree_tar(seeded_tree(seed, total_bytes=total_bytes))


def gzip_level(data: bytes, level: int) -> bytes:
    return gzip.compress(data, compresslevel=level, mtime=0)


def gzip_with_cli(data: bytes, *args: str, tool: str = "gzip") -> bytes:
    exe = shutil.which(tool)
    if exe is None:
        raise RuntimeError(f"{tool} is not installed (scripts/install.sh installs it)")
    return subprocess.run([exe, *args, "-c"], input=data, stdout=subprocess.PIPE, check=True).stdout


def gzip_members(data: bytes, pieces: int, level: int = 6) -> bytes:
    """Concatenated gzip members, like `cat a.gz b.gz` or mgzip output."""
    step = max(1, len(data) // pieces)
    parts = [data[i : i + step] for i in range(0, len(data), step)]
    return b"".join(gzip.compress(p, compresslevel=level, mtime=0) for p in parts)


def zlib_raw_stream(data: bytes, level: int = 6) -> bytes:
    return zlib.compress(data, level)


def tar_members(tar_bytes: bytes) -> dict[str, bytes]:
    """name -> content of every regular file in a tar."""
    out = {}
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        for member in tar:
            if member.isreg():
                f = tar.extractfile(member)
                assert f is not None
                out[member.name] = f.read()
    return out
