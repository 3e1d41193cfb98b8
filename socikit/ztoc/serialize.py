"""ztoc <-> flatbuffer bytes, byte-identical to the reference's Go builder (fact sheet §1.2–1.3).

The Go code builds the buffer back to front with `flatbuffers.NewBuilder(0)` in a fixed call
order; the bytes (padding, vtable sharing) follow from that order. `dumps` replays the same order
with a specialised builder: each table's layout depends only on which slots it sets and on the
buffer's alignment when it starts, so layouts are computed once and cached, and a table is then
one `struct.pack`. `loads` is a bounds-checked reader that needs no generated code.
"""

from __future__ import annotations

import struct
from typing import Any

from socikit.errors import ZtocFormatError
from socikit.ztoc.model import ALGORITHM_GZIP, ALGORITHM_UNCOMPRESSED, CompressionInfo, FileMetadata, Ztoc

_SIZES = {"u": 4, "q": 8, "I": 4, "i": 4, "b": 1}
_ALGORITHM_CODES = {ALGORITHM_GZIP: 1, ALGORITHM_UNCOMPRESSED: 2}
_ALGORITHM_NAMES = {v: k for k, v in _ALGORITHM_CODES.items()}
_DEFAULT_ALGORITHM = 1


class _Layout:
    """Where each slot of a table lands, for one slot set and one starting alignment."""

    __slots__ = ("fmt", "deltas", "uoffs", "vtable_key", "object_size", "kinds", "max_align", "vtable")

    def __init__(self, slots: tuple[tuple[int, str], ...], start: int) -> None:
        sz = start
        pieces: list[str] = []
        deltas: list[int] = []
        for _slot, kind in slots:
            size = _SIZES[kind]
            pad = -sz % size
            sz += pad + size
            pieces.append(("I" if kind == "u" else kind) + "x" * pad)
            deltas.append(sz - start)
        pad4 = -sz % 4
        object_offset = sz + pad4 + 4
        self.object_size = object_offset - start
        entries = [0] * (max((s for s, _ in slots), default=-1) + 1)
        for (slot, _kind), delta in zip(slots, deltas):
            entries[slot] = object_offset - (start + delta)
        while entries and entries[-1] == 0:
            entries.pop()
        self.vtable_key = tuple(entries)
        self.fmt = struct.Struct("<i" + "x" * pad4 + "".join(reversed(pieces)))
        self.deltas = deltas
        self.kinds = tuple(kind for _, kind in slots)
        # (index, delta) of the offset-typed slots: their stored value is relative to their position.
        self.uoffs = tuple((i, d) for i, ((_, k), d) in enumerate(zip(slots, deltas)) if k == "u")
        self.max_align = max((_SIZES[k] for k in self.kinds), default=1)
        n = len(self.vtable_key)
        self.vtable = struct.pack(f"<HH{n}H", 2 * (n + 2), self.object_size, *self.vtable_key)


class _Builder:
    """Back-to-front buffer emulating Go's flatbuffers.Builder for the calls the ztoc needs."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []  # in prepend order; joined reversed at the end
        self.size = 0  # bytes written so far (Go's Offset())
        self.minalign = 1
        self.vtables: dict[tuple[int, ...], int] = {}
        self.layouts: dict[tuple[Any, ...], _Layout] = {}
        self.string_cache: dict[str, bytes] = {}

    def string(self, data: bytes) -> int:
        n = len(data)
        pad = -(self.size + n + 1) % 4
        self.chunks.append(n.to_bytes(4, "little") + data + b"\0" * (1 + pad))
        self.size += 4 + n + 1 + pad
        if self.minalign < 4:
            self.minalign = 4
        return self.size

    def byte_vector(self, data: bytes) -> int:
        n = len(data)
        pad = -(self.size + n) % 4
        self.chunks.append(n.to_bytes(4, "little") + data + b"\0" * pad)
        self.size += 4 + n + pad
        if self.minalign < 4:
            self.minalign = 4
        return self.size

    def offset_vector(self, offsets: list[int]) -> int:
        n = len(offsets)
        pad = -self.size % 4
        start = self.size + pad
        # Elements are prepended last-first; element i sits at start + 4 * (n - i).
        rel = [start + 4 * (n - i) - off for i, off in enumerate(offsets)]
        self.chunks.append(struct.pack(f"<I{n}I", n, *rel) + b"\0" * pad)
        self.size = start + 4 * n + 4
        if self.minalign < 4:
            self.minalign = 4
        return self.size

    def table(self, slots: tuple[tuple[int, str], ...], values: list[int]) -> int:
        """A table whose slots are added in the given order (defaults already dropped by the caller)."""
        start = self.size
        key = (slots, start % 8)
        layout = self.layouts.get(key)
        if layout is None:
            layout = self.layouts[key] = _Layout(slots, start % 8)
        if layout.max_align > self.minalign:
            self.minalign = layout.max_align
        for i, delta in layout.uoffs:
            values[i] = start + delta - values[i]
        values.reverse()
        object_offset = start + layout.object_size
        existing = self.vtables.get(layout.vtable_key)
        if existing is None:
            vtable = layout.vtable
            vt_bytes = len(vtable)
            self.chunks.append(layout.fmt.pack(vt_bytes, *values))
            self.chunks.append(vtable)
            self.size = object_offset + vt_bytes
            if self.minalign < 2:
                self.minalign = 2
            self.vtables[layout.vtable_key] = self.size
        else:
            self.chunks.append(layout.fmt.pack(existing - object_offset, *values))
            self.size = object_offset
        return object_offset

    def finish(self, root: int) -> bytes:
        pad = -(self.size + 4) % self.minalign
        self.chunks.append(b"\0" * pad)
        self.size += pad
        self.chunks.append((self.size + 4 - root).to_bytes(4, "little"))
        self.size += 4
        self.chunks.reverse()
        return b"".join(self.chunks)


def _enc(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


_XATTR_SLOTS = ((0, "u"), (1, "u"))
_PADS = [b"\0" * i for i in range(9)]


class _NoCache(dict):  # type: ignore[type-arg]
    """A cache that never stores (names are almost always unique)."""

    def __setitem__(self, key: object, value: object) -> None:
        pass


_NO_CACHE: dict[str, bytes] = _NoCache()
# FileMetadata slots in the order the reference adds them; scalar slots are skipped when zero.
_FM_SLOTS = ((0, "u"), (1, "u"), (2, "q"), (3, "q"), (4, "u"), (5, "q"), (6, "I"), (7, "I"), (8, "u"),
             (9, "u"), (10, "u"), (11, "q"), (12, "q"), (13, "u"))
_FM_OPTIONAL = {2: 0, 3: 1, 5: 2, 6: 3, 7: 4, 11: 5, 12: 6}  # slot -> bit in the "non-zero" mask


def _fm_slots(mask: int) -> tuple[tuple[int, str], ...]:
    return tuple(
        (slot, kind) for slot, kind in _FM_SLOTS if slot not in _FM_OPTIONAL or mask >> _FM_OPTIONAL[slot] & 1
    )


_FM_SLOT_CACHE = {mask: _fm_slots(mask) for mask in range(128)}


def _aligned_string_chunk(text: str, cache: dict[str, bytes]) -> bytes:
    """A string's bytes as CreateString lays them out when the buffer is 4-aligned beforehand
    (then the padding depends on the length only); repeated strings come from `cache`."""
    chunk = cache.get(text)
    if chunk is None:
        data = text.encode("utf-8", "surrogateescape")
        n = len(data)
        chunk = n.to_bytes(4, "little") + data + _PADS[1 + (-(n + 1) % 4)]
        if len(cache) < 4096:
            cache[text] = chunk
    return chunk


def _file_metadata(b: _Builder, e: FileMetadata) -> int:
    append = b.chunks.append
    size = b.size
    if b.minalign < 4:
        b.minalign = 4
    if size % 4:
        # After a vtable the buffer may be 2 mod 4: lay out the first string the general way.
        name = b.string(e.name.encode("utf-8", "surrogateescape"))
        size = b.size
    else:
        chunk = _aligned_string_chunk(e.name, _NO_CACHE)
        append(chunk)
        size += len(chunk)
        name = size
    cache = b.string_cache
    c_type = _aligned_string_chunk(e.type, cache)
    c_link = _aligned_string_chunk(e.linkname, cache)
    c_uname = _aligned_string_chunk(e.uname, cache)
    c_gname = _aligned_string_chunk(e.gname, cache)
    c_mtime = _aligned_string_chunk(e.mod_time, cache)
    kind = size + len(c_type)
    linkname = kind + len(c_link)
    uname = linkname + len(c_uname)
    gname = uname + len(c_gname)
    mod_time = gname + len(c_mtime)
    append(c_mtime + c_gname + c_uname + c_link + c_type)  # memory order is the reverse of build order
    b.size = mod_time
    if e.xattrs:
        xattr_tables = []
        for key, value in e.xattrs:
            k = b.string(key)
            v = b.string(value)
            xattr_tables.append(b.table(_XATTR_SLOTS, [k, v]))
        xattrs = b.offset_vector(xattr_tables)
    else:
        append(b"\0\0\0\0")  # empty vector: strings leave the buffer 4-aligned
        b.size += 4
        xattrs = b.size
    offset, fsize, mode = e.uncompressed_offset, e.uncompressed_size, e.mode
    uid, gid = e.uid & 0xFFFFFFFF, e.gid & 0xFFFFFFFF
    devmajor, devminor = e.devmajor, e.devminor
    mask = (
        (offset != 0) | (fsize != 0) << 1 | (mode != 0) << 2 | (uid != 0) << 3 | (gid != 0) << 4
        | (devmajor != 0) << 5 | (devminor != 0) << 6
    )
    values = [name, kind]
    if offset:
        values.append(offset)
    if fsize:
        values.append(fsize)
    values.append(linkname)
    if mode:
        values.append(mode)
    if uid:
        values.append(uid)
    if gid:
        values.append(gid)
    values += (uname, gname, mod_time)
    if devmajor:
        values.append(devmajor)
    if devminor:
        values.append(devminor)
    values.append(xattrs)
    return b.table(_FM_SLOT_CACHE[mask], values)


def dumps(ztoc: Ztoc) -> bytes:
    """The ztoc's flatbuffer bytes, as the reference's Go marshaller writes them."""
    b = _Builder()
    version = b.string(_enc(ztoc.version))
    build_tool = b.string(_enc(ztoc.build_tool_identifier))
    entries = [0] * len(ztoc.toc)
    for i in range(len(ztoc.toc) - 1, -1, -1):
        entries[i] = _file_metadata(b, ztoc.toc[i])
    metadata = b.offset_vector(entries)
    toc = b.table(((0, "u"),), [metadata])
    info = ztoc.compression_info
    checkpoints = b.byte_vector(info.checkpoints)
    digests = [b.string(_enc(d)) for d in info.span_digests]
    digest_vector = b.offset_vector(digests)
    slots: list[tuple[int, str]] = []
    values: list[int] = []
    if info.max_span_id:
        slots.append((1, "i"))
        values.append(info.max_span_id)
    slots += [(2, "u"), (3, "u")]
    values += [digest_vector, checkpoints]
    code = _ALGORITHM_CODES.get(info.compression_algorithm)
    if code is None:
        raise ZtocFormatError(f"unknown compression algorithm {info.compression_algorithm!r}")
    if code != _DEFAULT_ALGORITHM:
        slots.append((0, "b"))
        values.append(code)
    compression_info = b.table(tuple(slots), values)
    slots = [(0, "u"), (1, "u"), (4, "u")]
    values = [version, build_tool, toc]
    if ztoc.compressed_archive_size:
        slots.append((2, "q"))
        values.append(ztoc.compressed_archive_size)
    if ztoc.uncompressed_archive_size:
        slots.append((3, "q"))
        values.append(ztoc.uncompressed_archive_size)
    slots.append((5, "u"))
    values.append(compression_info)
    root = b.table(tuple(slots), values)
    return b.finish(root)


# ---------------------------------------------------------------------------------------------
# Reading


class _Reader:
    __slots__ = ("buf", "n", "vt_cache")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.n = len(buf)
        self.vt_cache: dict[int, tuple[int, ...]] = {}

    def _check(self, pos: int, size: int) -> None:
        if pos < 0 or pos + size > self.n:
            raise ZtocFormatError(f"ztoc is truncated or corrupt: reference to bytes {pos}..{pos + size} "
                                  f"outside the {self.n}-byte buffer")

    def u32(self, pos: int) -> int:
        self._check(pos, 4)
        return int.from_bytes(self.buf[pos : pos + 4], "little")

    def fields(self, table: int) -> tuple[int, ...]:
        """The vtable entries (field offsets relative to the table; 0 = absent) of a table."""
        self._check(table, 4)
        vt = table - int.from_bytes(self.buf[table : table + 4], "little", signed=True)
        cached = self.vt_cache.get(vt)
        if cached is not None:
            return cached
        self._check(vt, 4)
        vt_size, _obj_size = struct.unpack_from("<HH", self.buf, vt)
        if vt_size < 4 or vt_size % 2:
            raise ZtocFormatError(f"ztoc has a malformed vtable at byte {vt}")
        self._check(vt, vt_size)
        entries = struct.unpack_from(f"<{(vt_size - 4) // 2}H", self.buf, vt + 4)
        self.vt_cache[vt] = entries
        return entries

    def field_pos(self, table: int, entries: tuple[int, ...], slot: int) -> int | None:
        if slot < len(entries) and entries[slot]:
            return table + entries[slot]
        return None

    def scalar(self, table: int, entries: tuple[int, ...], slot: int, fmt: str, default: int = 0) -> int:
        pos = self.field_pos(table, entries, slot)
        if pos is None:
            return default
        size = struct.calcsize(fmt)
        self._check(pos, size)
        return int(struct.unpack_from(fmt, self.buf, pos)[0])

    def indirect(self, table: int, entries: tuple[int, ...], slot: int) -> int | None:
        pos = self.field_pos(table, entries, slot)
        if pos is None:
            return None
        return pos + self.u32(pos)

    def bytes_at(self, pos: int | None) -> bytes:
        if pos is None:
            return b""
        length = self.u32(pos)
        self._check(pos + 4, length)
        return self.buf[pos + 4 : pos + 4 + length]

    def string(self, table: int, entries: tuple[int, ...], slot: int) -> str:
        return self.bytes_at(self.indirect(table, entries, slot)).decode("utf-8", "surrogateescape")

    def vector(self, pos: int | None) -> list[int]:
        """Positions of the tables/strings an offset vector points at."""
        if pos is None:
            return []
        count = self.u32(pos)
        self._check(pos + 4, 4 * count)
        rel = struct.unpack_from(f"<{count}I", self.buf, pos + 4)
        return [pos + 4 + 4 * i + r for i, r in enumerate(rel)]


_FM_KINDS = {0: "u", 1: "u", 2: "q", 3: "q", 4: "u", 5: "q", 6: "I", 7: "I", 8: "u", 9: "u", 10: "u",
             11: "q", 12: "q", 13: "u"}
_FM_STRING_SLOTS = (0, 1, 4, 8, 9, 10)


class _FmDecoder:
    """Decodes every FileMetadata table that shares one vtable with a single struct.unpack_from:
    the vtable fixes where each field sits relative to the table start."""

    def __init__(self, entries: tuple[int, ...]) -> None:
        present = sorted((off, slot) for slot, off in enumerate(entries[:14]) if off)
        fmt = "<"
        cursor = 0
        order = []
        for off, slot in present:
            size = _SIZES[_FM_KINDS[slot]]
            if off < cursor or off < 4:
                raise ZtocFormatError("ztoc FileMetadata table has overlapping fields")
            fmt += "x" * (off - cursor) + ("I" if _FM_KINDS[slot] == "u" else _FM_KINDS[slot])
            cursor = off + size
            order.append((slot, off))
        self.struct = struct.Struct(fmt)
        self.order = order

    def decode(self, r: _Reader, table: int) -> FileMetadata:
        r._check(table, self.struct.size)
        raw = self.struct.unpack_from(r.buf, table)
        values: dict[int, Any] = dict.fromkeys(range(14), 0)
        buf = r.buf
        for (slot, off), value in zip(self.order, raw):
            if _FM_KINDS[slot] == "u":
                target = table + off + value
                length = r.u32(target)
                r._check(target + 4, length)
                values[slot] = buf[target + 4 : target + 4 + length]
            else:
                values[slot] = value
        for slot in _FM_STRING_SLOTS:
            v = values[slot]
            values[slot] = v.decode("utf-8", "surrogateescape") if v else ""
        xattrs = ()
        if values[13]:
            # values[13] holds the vector bytes sliced above; re-resolve positions for the tables.
            vec_pos = next(table + off + raw[i] for i, (slot, off) in enumerate(self.order) if slot == 13)
            items = []
            for xpos in r.vector(vec_pos):
                xf = r.fields(xpos)
                items.append((r.bytes_at(r.indirect(xpos, xf, 0)), r.bytes_at(r.indirect(xpos, xf, 1))))
            xattrs = tuple(items)
        return FileMetadata(
            values[0], values[1], values[2], values[3], values[4], values[5], values[6], values[7],
            values[8], values[9], values[10], values[11], values[12], xattrs,
        )


def loads(data: bytes) -> Ztoc:
    """Decode ztoc flatbuffer bytes; ZtocFormatError when they are truncated or malformed."""
    data = bytes(data)
    try:
        return _loads(_Reader(data))
    except ZtocFormatError:
        raise
    except (struct.error, IndexError, ValueError, OverflowError) as exc:
        raise ZtocFormatError(f"ztoc is corrupt: {exc}") from None


def _loads(r: _Reader) -> Ztoc:
    if r.n < 8:
        raise ZtocFormatError(f"ztoc is {r.n} bytes, too short to be a flatbuffer")
    root = r.u32(0)
    f = r.fields(root)
    toc_pos = r.indirect(root, f, 4)
    entries: list[FileMetadata] = []
    if toc_pos is not None:
        tf = r.fields(toc_pos)
        decoders: dict[tuple[int, ...], _FmDecoder] = {}
        for pos in r.vector(r.indirect(toc_pos, tf, 0)):
            ef = r.fields(pos)
            decoder = decoders.get(ef)
            if decoder is None:
                decoder = decoders[ef] = _FmDecoder(ef)
            entries.append(decoder.decode(r, pos))
    info_pos = r.indirect(root, f, 5)
    if info_pos is None:
        raise ZtocFormatError("ztoc has no compression info")
    cf = r.fields(info_pos)
    code = r.scalar(info_pos, cf, 0, "<b", _DEFAULT_ALGORITHM)
    algorithm = _ALGORITHM_NAMES.get(code)
    if algorithm is None:
        raise ZtocFormatError(f"ztoc has unknown compression algorithm code {code}")
    digests = tuple(r.bytes_at(p).decode("utf-8", "surrogateescape") for p in r.vector(r.indirect(info_pos, cf, 2)))
    info = CompressionInfo(
        compression_algorithm=algorithm,
        max_span_id=r.scalar(info_pos, cf, 1, "<i"),
        span_digests=digests,
        checkpoints=r.bytes_at(r.indirect(info_pos, cf, 3)),
    )
    return Ztoc(
        version=r.string(root, f, 0),
        build_tool_identifier=r.string(root, f, 1),
        compressed_archive_size=r.scalar(root, f, 2, "<q"),
        uncompressed_archive_size=r.scalar(root, f, 3, "<q"),
        toc=tuple(entries),
        compression_info=info,
    )


def tar_header_offsets(entries: tuple[FileMetadata, ...] | list[FileMetadata]) -> list[tuple[int, FileMetadata]]:
    """Entries sorted by data offset, each with the offset of its tar header block(s), derived as
    the reference's reader does: the first at 0, then the previous entry's data end rounded up to
    512. An entry whose data starts before its derived header is `invalid toc entry`."""
    out = []
    next_header = 0
    for entry in sorted(entries, key=lambda e: e.uncompressed_offset):
        if next_header > entry.uncompressed_offset:
            raise ZtocFormatError(f"invalid toc entry {entry.name!r}: it overlaps the previous entry")
        out.append((next_header, entry))
        end = entry.uncompressed_offset + entry.uncompressed_size
        next_header = (end + 511) // 512 * 512
    return out
