"""Test layers for the socikit.lazy tests: a tar with every entry type, gzip'd, and its ztoc."""

from __future__ import annotations

import gzip
import hashlib
import io
import random
import tarfile
from dataclasses import dataclass

from socikit.ztoc.builder import build_ztoc
from socikit.ztoc.model import Ztoc
from tests.images import TarBuilder


@dataclass(frozen=True)
class Layer:
    tar: bytes
    blob: bytes
    ztoc: Ztoc

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.blob).hexdigest()

    def member(self, name: str) -> bytes:
        with tarfile.open(fileobj=io.BytesIO(self.tar)) as tar:
            extracted = tar.extractfile(name)
            assert extracted is not None
            return extracted.read()


def noise(size: int, seed: int) -> bytes:
    """Half random, half text: spans of a few deflate blocks each."""
    rng = random.Random(seed)
    words = b"alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
    parts, total = [], 0
    while total < size:
        piece = rng.randbytes(rng.randint(100, 4000)) if rng.random() < 0.5 else \
            b" ".join(rng.choice(words) for _ in range(rng.randint(10, 400)))
        parts.append(piece)
        total += len(piece)
    return b"".join(parts)[:size]


def make_layer(builder: TarBuilder, *, span_size: int = 65536) -> Layer:
    tar = builder.finish()
    blob = gzip.compress(tar, compresslevel=6, mtime=0)
    ztoc = build_ztoc(io.BytesIO(blob), span_size=span_size, build_tool_identifier="socikit tests").ztoc
    return Layer(tar, blob, ztoc)


def every_kind() -> TarBuilder:
    """Regular files (one spanning many spans), a hard link with its own mode and owner, symlinks,
    devices, a fifo, xattrs, a whiteout, an opaque directory and a whiteout next to a real file of
    the same name."""
    b = TarBuilder()
    b.dir("etc", mode=0o755)
    b.file("etc/big.bin", noise(400_000, 1), xattrs={"user.note": b"hi", "user.bin": b"\x00\xff"})
    b.file("etc/small.txt", b"small\n", mode=0o640, uid=5, gid=6)
    b.file("etc/suid", b"#!/bin/sh\n", mode=0o4755)
    b.symlink("etc/link", "small.txt")
    tar = b.tar
    hard = tarfile.TarInfo("etc/hard")
    hard.type = tarfile.LNKTYPE
    hard.linkname = "etc/small.txt"
    hard.mode, hard.uid, hard.gid, hard.mtime = 0o600, 7, 8, 1_700_000_100
    tar.addfile(hard)
    for name, kind, major, minor in (("dev/null", tarfile.CHRTYPE, 1, 3), ("dev/sda", tarfile.BLKTYPE, 8, 0),
                                     ("dev/big", tarfile.CHRTYPE, 4096, 300000), ("dev/pipe", tarfile.FIFOTYPE, 0, 0)):
        b._parents(name)
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.devmajor, info.devminor, info.mtime = kind, 0o660, major, minor, 1_700_000_000
        tar.addfile(info)
    b.whiteout("etc/gone")
    b.opaque("var/opq")
    b.file("var/opq/kept", b"kept")
    b.file("var/.wh.both", b"")
    b.file("var/both", b"a real file beside its whiteout")
    return b
