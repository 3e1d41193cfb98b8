"""Seeded test layers for the ztoc tests: a tree of directories and files whose contents mix
text-like, repetitive and random bytes (so deflate makes blocks of every kind), plus symlinks and
hard links; and ways to cut a tar into gzip members. Same seed, same bytes, on every machine."""

from __future__ import annotations

import gzip
import io
import random
import tarfile
import zlib

WORDS = (
    b"layer span checkpoint window deflate inflate member trailer header offset digest tar entry "
    b"snapshot lazy mount fuse registry manifest index blob chunk stream seek read write"
).split()


def file_content(rng: random.Random, size: int) -> bytes:
    """Bytes that compress like real files: mostly words, some runs, some noise."""
    parts: list[bytes] = []
    total = 0
    while total < size:
        kind = rng.random()
        if kind < 0.6:
            piece = b" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 60))) + b"\n"
        elif kind < 0.8:
            piece = bytes([rng.randrange(256)]) * rng.randint(10, 3000)
        else:
            piece = rng.randbytes(rng.randint(10, 2000))
        parts.append(piece)
        total += len(piece)
    return b"".join(parts)[:size]


def seeded_tar(seed: int, *, files: int = 120, max_size: int = 200_000, hardlinks: int = 4) -> bytes:
    """A PAX tar of `files` regular files in nested directories (sizes 0..max_size), a few
    symlinks and hard links, with names and contents drawn from `seed`."""
    rng = random.Random(seed)
    buf = io.BytesIO()
    regular: list[str] = []
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = [""]
        for number in range(files):
            if rng.random() < 0.25 or len(dirs) == 1:
                parent = rng.choice(dirs)
                new = f"{parent}d{number}/"
                info = tarfile.TarInfo(new)
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                info.mtime = 1_700_000_000 + number
                tar.addfile(info)
                dirs.append(new)
            size = rng.choice((0, rng.randint(1, 600), rng.randint(1, max_size)))
            name = f"{rng.choice(dirs)}f{number}.dat"
            data = file_content(rng, size)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 1_700_000_000 + number
            tar.addfile(info, io.BytesIO(data))
            regular.append(name)
        for number in range(min(hardlinks, len(regular))):
            info = tarfile.TarInfo(f"link{number}")
            info.type = tarfile.LNKTYPE
            info.linkname = rng.choice(regular)
            tar.addfile(info)
            info = tarfile.TarInfo(f"sym{number}")
            info.type = tarfile.SYMTYPE
            info.linkname = rng.choice(regular)
            tar.addfile(info)
    data = buf.getvalue()
    assert len(data) > files * 512, "the tree generator made an implausibly small tar"
    return data


def regular_files(tar_bytes: bytes) -> dict[str, bytes]:
    """name -> content of every regular file (hard links give their target's content)."""
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        for member in tar:
            if member.isreg() or member.islnk():
                handle = tar.extractfile(member)
                assert handle is not None
                out[member.name] = handle.read()
    assert out, "the tar holds no regular file"
    return out


def gzip_member(data: bytes, *, level: int = 6, name: bytes = b"", mem_level: int = 8) -> bytes:
    """One gzip member; with `name` the header carries FNAME (a header longer than 10 bytes).
    A small `mem_level` makes small deflate blocks (2**(mem_level+6) symbols), so many
    block boundaries, at every bit offset, even in a small stream."""
    if not name and mem_level == 8:
        return gzip.compress(data, compresslevel=level, mtime=0)
    body = zlib.compressobj(level, zlib.DEFLATED, -15, mem_level)
    deflated = body.compress(data) + body.flush()
    flags = b"\x08" if name else b"\x00"
    header = b"\x1f\x8b\x08" + flags + b"\0\0\0\0" + b"\0\xff" + (name + b"\0" if name else b"")
    trailer = zlib.crc32(data).to_bytes(4, "little") + (len(data) & 0xFFFFFFFF).to_bytes(4, "little")
    return header + deflated + trailer


def members_at(
    data: bytes, cuts: list[int], *, level: int = 6, named: bool = False, mem_level: int = 8
) -> tuple[bytes, list[int]]:
    """`data` cut at the uncompressed offsets `cuts`, each piece its own gzip member (an empty
    piece makes an empty member). Returns the blob and the blob offset where each member starts."""
    bounds = [0, *cuts, len(data)]
    blob = bytearray()
    starts: list[int] = []
    for number, (lo, hi) in enumerate(zip(bounds, bounds[1:], strict=False)):
        starts.append(len(blob))
        name = f"part{number}".encode() if named else b""
        blob += gzip_member(data[lo:hi], level=level, name=name, mem_level=mem_level)
    return bytes(blob), starts


def write_zero_file_layer(path: str, *, name: str, size_mib: int, before: bytes = b"head") -> None:
    """Write a gzip layer holding a small file `before.txt` and then `name`, `size_mib` MiB of
    zeros, without compressing those zeros more than once: after a full flush deflate output
    refers to nothing before it, so one compressed MiB of zeros can be repeated."""
    mib = bytes(1 << 20)
    head = tarfile.TarInfo("before.txt")
    head.size = len(before)
    big = tarfile.TarInfo(name)
    big.size = size_mib << 20
    prefix = head.tobuf(tarfile.PAX_FORMAT) + before + bytes(-len(before) % 512) + big.tobuf(tarfile.PAX_FORMAT)
    suffix = bytes(1024)  # the end-of-archive blocks (size_mib MiB is a multiple of 512)

    def deflated(data: bytes, mode: int) -> bytes:
        body = zlib.compressobj(6, zlib.DEFLATED, -15)
        return body.compress(data) + body.flush(mode)

    zeros = deflated(mib, zlib.Z_FULL_FLUSH)
    crc = zlib.crc32(prefix)
    for _ in range(size_mib):
        crc = zlib.crc32(mib, crc)
    crc = zlib.crc32(suffix, crc)
    total = len(prefix) + (size_mib << 20) + len(suffix)
    with open(path, "wb") as out:
        out.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")
        out.write(deflated(prefix, zlib.Z_FULL_FLUSH))
        for _ in range(size_mib):
            out.write(zeros)
        out.write(deflated(suffix, zlib.Z_FINISH))
        out.write(crc.to_bytes(4, "little") + (total & 0xFFFFFFFF).to_bytes(4, "little"))
