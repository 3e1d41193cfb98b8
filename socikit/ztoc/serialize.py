"""ztoc value <-> flatbuffer bytes (SOCI ztoc v0.9, reference `ztoc/ztoc_marshaler.go`).

`dumps` must give the exact bytes of the reference, whose digest names the ztoc blob. The Go code
drives `flatbuffers.NewBuilder(0)` in a fixed call order (fact sheet §1.3); every byte (padding,
shared vtables, the root offset) follows from that order and from the Go builder's rules, which
`_BackBuffer` replays:

* the buffer grows from the back; "position" below is Go's `Offset()`, the number of bytes
  written so far, so a position never changes once an object is written;
* `Prep(size, extra)` pads with zeros so that after `extra` more bytes the position is a multiple
  of `size`, and remembers the largest `size` seen (`minalign`), which `Finish` aligns to;
* a table is its fields in the order they were added (scalars equal to their default are not
  added), an int32 vtable offset, then a vtable of uint16s (vtable size, object size, one entry
  per field up to the last one present) -- unless an earlier vtable has the same field entries,
  in which case the table points at that one. Go compares field entries only, not the object size.

A FileMetadata table's layout depends only on which scalar slots are non-zero and on the buffer's
alignment mod 8 when it starts, so layouts are computed once and each entry costs a few dict
lookups and one `struct.pack`. `loads` is a bounds-checked reader that needs no generated code.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Sequence
from operator import itemgetter

from socikit.errors import ZtocFormatError
from socikit.ztoc._engine import TocPlan
from socikit.ztoc.model import ALGORITHM_GZIP, ALGORITHM_UNCOMPRESSED, CompressionInfo, FileMetadata, Ztoc
from socikit.ztoc.native import NativeToc

__all__ = ["dump", "dumps", "loads", "tar_header_offsets", "TAR_BLOCK_SIZE"]

TAR_BLOCK_SIZE = 512

# CompressionAlgorithm enum of the schema; Gzip is the field's default, so it is never written.
_ALGORITHM_CODES = {ALGORITHM_GZIP: 1, ALGORITHM_UNCOMPRESSED: 2}
_ALGORITHM_NAMES = {code: name for name, code in _ALGORITHM_CODES.items()}
_DEFAULT_ALGORITHM_CODE = 1

# Field kinds: "u" offset to a string/vector/table (uint32), "q" int64, "I" uint32, "i" int32, "b" int8.
_WIDTH = {"u": 4, "q": 8, "I": 4, "i": 4, "b": 1}
_STRUCT_CODE = {"u": "I", "q": "q", "I": "I", "i": "i", "b": "b"}

# FileMetadata slot kinds, by slot id (= field index of the model's FileMetadata tuple).
_FM_KINDS = ("u", "u", "q", "q", "u", "q", "I", "I", "u", "u", "u", "q", "q", "u")
_FM_SCALAR_SLOTS = (2, 3, 5, 6, 7, 11, 12)
_FM_STRING_SLOTS = (0, 1, 4, 8, 9, 10)
_FM_OFFSET_SLOTS = (0, 1, 4, 8, 9, 10, 13)  # strings + the xattrs vector

_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_U16X2 = struct.Struct("<HH")
_ZERO_PADS = tuple(b"\0" * i for i in range(16))
_EMPTY_VECTOR = b"\0\0\0\0"  # an offset vector of length 0 on a 4-aligned buffer


# ---------------------------------------------------------------------------------------------
# Table layouts


class _Layout:
    """Byte layout of a table whose slots are added in `slots` order, starting at a position
    congruent to `start_mod8` modulo 8 (the only thing the padding depends on).

    `pack(soffset, *values_in_memory_order)` gives the table bytes; `deltas[i]` is the position of
    the i-th added field relative to the table's start position (after it has been written)."""

    __slots__ = ("pack", "deltas", "key", "object_size", "vtable", "max_align", "order")

    def __init__(self, slots: Sequence[tuple[int, str]], start_mod8: int) -> None:
        pos = start_mod8
        codes: list[str] = []
        deltas: list[int] = []
        max_align = 1
        for _slot, kind in slots:
            width = _WIDTH[kind]
            max_align = max(max_align, width)
            pad = -pos % width
            pos += pad + width
            codes.append(_STRUCT_CODE[kind] + "x" * pad)  # padding lies after the field in memory
            deltas.append(pos - start_mod8)
        soffset_pad = -pos % 4
        object_end = pos + soffset_pad + 4  # position of the table itself
        self.object_size = object_end - start_mod8
        entries = [0] * (max((slot for slot, _ in slots), default=-1) + 1)
        for (slot, _kind), delta in zip(slots, deltas, strict=True):
            entries[slot] = self.object_size - delta
        while entries and entries[-1] == 0:  # Go trims trailing absent fields
            entries.pop()
        self.key = tuple(entries)
        self.deltas = tuple(deltas)
        self.max_align = max_align
        # Memory order is the reverse of the order the fields were added.
        self.pack = struct.Struct("<i" + "x" * soffset_pad + "".join(reversed(codes))).pack
        self.order = tuple(reversed(range(len(slots))))  # memory position -> added index
        self.vtable = struct.pack(f"<HH{len(entries)}H", 4 + 2 * len(entries), self.object_size, *entries)


_LAYOUTS: dict[tuple[tuple[tuple[int, str], ...], int], _Layout] = {}


def _layout(slots: tuple[tuple[int, str], ...], start: int) -> _Layout:
    key = (slots, start & 7)
    layout = _LAYOUTS.get(key)
    if layout is None:
        layout = _LAYOUTS[key] = _Layout(slots, start & 7)
    return layout


class _FmShape:
    """A FileMetadata layout plus how to pick its pack arguments out of one flat record:
    `record = entry (14 fields) + offsets of slots 0,1,4,8,9,10,13 (7) + (soffset,)`."""

    __slots__ = ("layout", "pick", "offset_deltas")

    def __init__(self, nonzero: tuple[bool, ...], start_mod8: int) -> None:
        present = dict(zip(_FM_SCALAR_SLOTS, nonzero, strict=True))
        slots = tuple((s, _FM_KINDS[s]) for s in range(14) if present.get(s, True))
        self.layout = _layout(slots, start_mod8)
        delta_of = dict(zip((s for s, _ in slots), self.layout.deltas, strict=True))
        self.offset_deltas = tuple(delta_of[s] for s in _FM_OFFSET_SLOTS)
        record_index = {s: 14 + i for i, s in enumerate(_FM_OFFSET_SLOTS)}
        memory_order = [slots[i][0] for i in self.layout.order]
        picks = [21] + [record_index.get(s, s) for s in memory_order]
        self.pick = itemgetter(*picks)


# Keyed by (is slot 2, 3, 5, 6, 7, 11, 12 non-zero..., start position mod 8).
_FM_SHAPES: dict[tuple[int, ...], _FmShape] = {}


def _fm_shape(key: tuple[int, ...]) -> _FmShape:
    shape = _FM_SHAPES.get(key)
    if shape is None:
        shape = _FM_SHAPES[key] = _FmShape(tuple(map(bool, key[:7])), key[7])
    return shape


# ---------------------------------------------------------------------------------------------
# The back-to-front buffer


class _BackBuffer:
    """The Go builder's state: chunks in write order (reversed once at the end), the position,
    `minalign` and the vtables written so far."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.pos = 0
        self.minalign = 1
        # Field entries -> position of the vtable written for them. Go's WriteVtable searches the
        # earlier vtables for the same trimmed field entries (`vtableEqual`), ignoring the object
        # size. Its comparison would also let an absent field match an old entry equal to the new
        # table's position, but an old entry is at most the old table's size, which is less than
        # the new table's position: an exact dictionary match is the same rule.
        self.vtables: dict[tuple[int, ...], int] = {}

    def string(self, data: bytes) -> int:
        """CreateString: Prep(4, len+1), NUL, bytes, uint32 length."""
        n = len(data)
        pad = -(self.pos + n + 1) % 4
        self.chunks.append(_U32.pack(n) + data + _ZERO_PADS[1 + pad])
        self.pos += 5 + n + pad
        if self.minalign < 4:
            self.minalign = 4
        return self.pos

    def byte_vector(self, data: bytes) -> int:
        """CreateByteVector: Prep(4, len), bytes, uint32 length. The data is kept as its own
        chunk, not copied (checkpoint blobs reach tens of MB)."""
        n = len(data)
        pad = -(self.pos + n) % 4
        # Chunks are in write order and reversed at the end: memory order is length, data, pad.
        self.chunks += (_ZERO_PADS[pad], data, _U32.pack(n))
        self.pos += 4 + n + pad
        if self.minalign < 4:
            self.minalign = 4
        return self.pos

    def offset_vector(self, targets: Sequence[int]) -> int:
        """StartVector(4, n, 4), PrependUOffsetT of each target last-first, EndVector."""
        n = len(targets)
        pad = -self.pos % 4
        base = self.pos + pad
        # Element i ends up at position base + 4 * (n - i) and stores (that position - target).
        rel = [base + 4 * (n - i) - t for i, t in enumerate(targets)]
        self.chunks.append(struct.pack(f"<{n + 1}I", n, *rel) + _ZERO_PADS[pad])
        self.pos = base + 4 * n + 4
        if self.minalign < 4:
            self.minalign = 4
        return self.pos

    def add_vtable(self, layout: _Layout, table_pos: int) -> int:
        """Write the layout's vtable just before the table at `table_pos`; its position."""
        self.chunks.append(layout.vtable)
        self.pos = table_pos + len(layout.vtable)
        self.vtables[layout.key] = self.pos
        return self.pos

    def table(self, slots: tuple[tuple[int, str], ...], values: list[int]) -> int:
        """StartObject, the given slots in order (offset values are target positions), EndObject."""
        start = self.pos
        layout = _layout(slots, start)
        if layout.max_align > self.minalign:
            self.minalign = layout.max_align
        if self.minalign < 4:
            self.minalign = 4
        args = [start + d - v if kind == "u" else v
                for (_, kind), d, v in zip(slots, layout.deltas, values, strict=True)]
        return self._emit(layout, start, [args[i] for i in layout.order])

    def _emit(self, layout: _Layout, start: int, memory_values: list[int]) -> int:
        table_pos = start + layout.object_size
        existing = self.vtables.get(layout.key)
        if existing is None:
            self.chunks.append(layout.pack(len(layout.vtable), *memory_values))
            self.add_vtable(layout, table_pos)
        else:
            self.chunks.append(layout.pack(existing - table_pos, *memory_values))
            self.pos = table_pos
        return table_pos

    def finish(self, root: int) -> list[bytes]:
        """Finish: Prep(minalign, 4) and the root offset; the chunks in memory order."""
        pad = -(self.pos + 4) % self.minalign
        self.chunks.append(_ZERO_PADS[pad])
        self.pos += pad + 4
        self.chunks.append(_U32.pack(self.pos - root))
        self.chunks.reverse()
        return self.chunks


# ---------------------------------------------------------------------------------------------
# dumps


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _string_block(text: str) -> bytes:
    """A string's bytes as CreateString lays them out on a 4-aligned buffer (length, data, NUL, pad)."""
    data = _encode(text)
    n = len(data)
    return _U32.pack(n) + data + _ZERO_PADS[1 + (-(n + 1) % 4)]


class _Tail:
    """The four strings written right after the name (type, linkname, uname, gname), laid out for
    a 4-aligned buffer. Layers repeat these combinations a lot; mod_time, written next, mostly
    differs per file and is laid out per entry."""

    __slots__ = ("block", "distances")

    def __init__(self, strings: tuple[str, ...]) -> None:
        blocks = [_string_block(s) for s in strings]
        # Memory order: gname, uname, linkname, type (the last written comes first).
        self.block = b"".join(reversed(blocks))
        # For the name and each of the four strings: the bytes of this block written after it.
        lengths = [len(b) for b in blocks]
        self.distances = (sum(lengths), *(sum(lengths[i + 1 :]) for i in range(4)))


_TAIL_STRINGS = itemgetter(1, 4, 8, 9)


def _normalized_entry(e: FileMetadata) -> FileMetadata:
    """Go stores uid/gid as uint32(x); everything else must fit its field or it cannot be written."""
    e = e._replace(uid=e.uid & 0xFFFFFFFF, gid=e.gid & 0xFFFFFFFF)
    for field in ("uncompressed_offset", "uncompressed_size", "mode", "devmajor", "devminor"):
        value: int = getattr(e, field)
        if not -(1 << 63) <= value < 1 << 63:
            raise ZtocFormatError(f"cannot serialize {e.name!r}: {field} {value} does not fit in an int64")
    return e


def _write_toc(b: _BackBuffer, toc: Sequence[FileMetadata]) -> int:
    """The FileMetadata tables (last entry first, as the reference does), their vector and the TOC."""
    positions = [0] * len(toc)
    tails: dict[tuple[str, ...], _Tail] = {}
    mod_times: dict[str, bytes] = {}
    vt_of_shape: dict[_FmShape, int] = {}
    shapes = _FM_SHAPES
    append = b.chunks.append
    pos = b.pos
    b.minalign = max(b.minalign, 4)
    for index in range(len(toc) - 1, -1, -1):
        e = toc[index]
        if pos & 3 or not (0 <= e.uid <= 0xFFFFFFFF and 0 <= e.gid <= 0xFFFFFFFF):
            b.pos = pos
            positions[index] = _write_entry_general(b, _normalized_entry(e))
            pos = b.pos
            continue
        data = e.name.encode("utf-8", "surrogateescape")
        n = len(data)
        append(_U32.pack(n) + data + _ZERO_PADS[1 + (-(n + 1) % 4)])
        pos += (n + 4) & ~3
        pos += 4
        strings = _TAIL_STRINGS(e)
        tail = tails.get(strings)
        if tail is None:
            tail = tails[strings] = _Tail(strings)
        append(tail.block)
        mod_time = mod_times.get(e.mod_time)
        if mod_time is None:
            mod_time = mod_times[e.mod_time] = _string_block(e.mod_time)
        append(mod_time)
        pos += len(tail.block) + len(mod_time)
        if e.xattrs:
            # PAX records (BuildKit writes an mtime record for every file): their strings,
            # tables and vector through the step-by-step builder.
            b.pos = pos
            _write_xattrs(b, e.xattrs)
            after_mod_time = b.pos - pos
            pos = b.pos
        else:
            append(_EMPTY_VECTOR)
            pos += 4
            after_mod_time = 4
        # Stored offset of each string = its field's delta in the table + the bytes written
        # after the string; the xattrs vector is written last, right before the table.
        key = (e[2] != 0, e[3] != 0, e[5] != 0, e[6] != 0, e[7] != 0, e[11] != 0, e[12] != 0, pos & 7)
        shape = shapes.get(key) or _fm_shape(key)
        d = shape.offset_deltas
        t = tail.distances
        after_tail = len(mod_time) + after_mod_time
        consts = (
            d[0] + t[0] + after_tail,
            d[1] + t[1] + after_tail,
            d[2] + t[2] + after_tail,
            d[3] + t[3] + after_tail,
            d[4] + t[4] + after_tail,
            d[5] + after_mod_time,
            d[6],
        )
        layout = shape.layout
        if layout.max_align > b.minalign:
            b.minalign = layout.max_align
        table_pos = pos + layout.object_size
        vt = vt_of_shape.get(shape)
        if vt is None:
            vt = b.vtables.get(layout.key)
            if vt is not None:
                vt_of_shape[shape] = vt
        try:
            if vt is None:
                append(layout.pack(*shape.pick(e + consts + (len(layout.vtable),))))
                b.pos = table_pos
                vt_of_shape[shape] = b.add_vtable(layout, table_pos)
                pos = b.pos
            else:
                append(layout.pack(*shape.pick(e + consts + (vt - table_pos,))))
                pos = table_pos
        except struct.error:
            raise ZtocFormatError(f"cannot serialize TOC entry {e.name!r}: a field is out of range") from None
        positions[index] = table_pos
    b.pos = pos
    metadata = b.offset_vector(positions)
    return b.table(((0, "u"),), [metadata])


_XATTR_SLOTS = ((0, "u"), (1, "u"))


def _write_xattrs(b: _BackBuffer, xattrs: Sequence[tuple[bytes, bytes]]) -> int:
    """Each record's key and value strings and its Xattr table, then their vector; its position.
    Go keeps PAX records in a map (one value per key) and writes the keys in sorted order."""
    if len(xattrs) > 1:
        xattrs = sorted(dict(xattrs).items())
    tables = []
    for key, value in xattrs:
        k = b.string(bytes(key))
        v = b.string(bytes(value))
        tables.append(b.table(_XATTR_SLOTS, [k, v]))
    return b.offset_vector(tables)


def _write_entry_general(b: _BackBuffer, e: FileMetadata) -> int:
    """One FileMetadata through the step-by-step builder (entries with xattrs, odd alignment)."""
    name = b.string(_encode(e.name))
    kind = b.string(_encode(e.type))
    linkname = b.string(_encode(e.linkname))
    uname = b.string(_encode(e.uname))
    gname = b.string(_encode(e.gname))
    mod_time = b.string(_encode(e.mod_time))
    xattrs = _write_xattrs(b, e.xattrs)
    offsets = {0: name, 1: kind, 4: linkname, 8: uname, 9: gname, 10: mod_time, 13: xattrs}
    scalars = dict(zip(_FM_SCALAR_SLOTS, (e.uncompressed_offset, e.uncompressed_size, e.mode, e.uid, e.gid,
                                          e.devmajor, e.devminor), strict=True))
    slots: list[tuple[int, str]] = []
    values: list[int] = []
    for slot in range(14):
        number = offsets.get(slot, scalars.get(slot, 0))
        if number:
            slots.append((slot, _FM_KINDS[slot]))
            values.append(number)
    try:
        return b.table(tuple(slots), values)
    except struct.error:
        raise ZtocFormatError(f"cannot serialize TOC entry {e.name!r}: a field is out of range") from None


def dumps(ztoc: Ztoc) -> bytes:
    """The ztoc's flatbuffer bytes, byte-identical to the reference Go marshaller's output.

    TOC entries are written in the order given (the reference keeps tar order). Raises
    ZtocFormatError for values the format cannot hold (unknown algorithm, int64 overflow).

    A built ztoc's TOC (`native.NativeToc`) is written by the native engine straight into one
    buffer of the final size: no Python object per entry, no pieces joined at the end."""
    chunks, head, plan = _lay_out(ztoc)
    if plan is None:
        return b"".join(chunks)
    return plan.assemble(chunks, head)


def dump(ztoc: Ztoc, write: Callable[[bytes], object]) -> None:
    """`dumps(ztoc)` handed to `write` in pieces (about 1 MiB each for a built ztoc's TOC), so
    that writing a ztoc to a file never holds all of its bytes at once."""
    chunks, head, plan = _lay_out(ztoc)
    if plan is None:
        for chunk in chunks:
            write(chunk)
    else:
        plan.write(chunks, head, write)


def _lay_out(ztoc: Ztoc) -> tuple[list[bytes], list[bytes], TocPlan | None]:
    """The Go builder's run over `ztoc`: the buffer's chunks in memory order; for a native TOC,
    the chunks before it and after it (`head`) and the plan that writes the TOC between them."""
    info = ztoc.compression_info
    algorithm = info.compression_algorithm or ALGORITHM_GZIP  # Go skips an empty name: the default
    code = _ALGORITHM_CODES.get(algorithm)
    if code is None:
        raise ZtocFormatError(f"cannot serialize compression algorithm {algorithm!r}")
    b = _BackBuffer()
    version = b.string(_encode(ztoc.version))
    build_tool = b.string(_encode(ztoc.build_tool_identifier))
    plan: TocPlan | None = None
    head: list[bytes] = []
    if isinstance(ztoc.toc, NativeToc):
        plan = ztoc.toc.store.plan(b.pos)
        head = b.chunks[::-1]
        b.chunks = []
        b.pos = plan.end
        b.minalign = max(b.minalign, plan.minalign)
        b.vtables.update(plan.vtables)
        toc = plan.toc_table
    else:
        toc = _write_toc(b, ztoc.toc)
    checkpoints = b.byte_vector(info.checkpoints)
    digests = b.offset_vector([b.string(_encode(d)) for d in info.span_digests])
    slots: list[tuple[int, str]] = []
    values: list[int] = []
    if info.max_span_id:
        slots.append((1, "i"))
        values.append(info.max_span_id)
    slots += [(2, "u"), (3, "u")]
    values += [digests, checkpoints]
    if code != _DEFAULT_ALGORITHM_CODE:
        slots.append((0, "b"))
        values.append(code)
    try:
        compression_info = b.table(tuple(slots), values)
        slots = [(0, "u"), (1, "u"), (4, "u")]
        values = [version, build_tool, toc]
        for slot, value in ((2, ztoc.compressed_archive_size), (3, ztoc.uncompressed_archive_size)):
            if value:
                slots.append((slot, "q"))
                values.append(value)
        slots.append((5, "u"))
        values.append(compression_info)
        root = b.table(tuple(slots), values)
    except struct.error:
        raise ZtocFormatError("cannot serialize ztoc: a size or max_span_id is out of range") from None
    return b.finish(root), head, plan


# ---------------------------------------------------------------------------------------------
# loads


class _Reader:
    """Bounds-checked access to a flatbuffer; every failure is a ZtocFormatError."""

    __slots__ = ("buf", "size", "vtables", "fm_decoders", "strings", "xattr_fields")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.size = len(buf)
        self.vtables: dict[int, tuple[int, ...]] = {}
        self.fm_decoders: dict[int, _FmDecoder] = {}
        self.strings: dict[bytes, str] = {}
        self.xattr_fields: dict[int, tuple[int, int]] = {}  # vtable -> field offsets of key, value

    def fail(self, what: str) -> ZtocFormatError:
        return ZtocFormatError(f"ztoc is truncated or corrupt: {what} (buffer is {self.size} bytes)")

    def u32(self, pos: int, what: str) -> int:
        if pos + 4 > self.size:
            raise self.fail(f"{what} at byte {pos} is past the end")
        return int(_U32.unpack_from(self.buf, pos)[0])

    def vtable_of(self, table: int, what: str) -> tuple[int, tuple[int, ...]]:
        """(vtable position, field entries) of the table at `table`."""
        if table + 4 > self.size:
            raise self.fail(f"{what} table at byte {table} is past the end")
        vt = table - _I32.unpack_from(self.buf, table)[0]
        entries = self.vtables.get(vt)
        if entries is None:
            if vt < 0 or vt + 4 > self.size:
                raise self.fail(f"{what} table at byte {table} has its vtable outside the buffer")
            vt_size, _object_size = _U16X2.unpack_from(self.buf, vt)
            if vt_size < 4 or vt_size & 1 or vt + vt_size > self.size:
                raise self.fail(f"{what} table at byte {table} has a malformed vtable")
            entries = struct.unpack_from(f"<{(vt_size - 4) // 2}H", self.buf, vt + 4)
            self.vtables[vt] = entries
        return vt, entries

    def field(self, table: int, entries: tuple[int, ...], slot: int, width: int, what: str) -> int | None:
        """Position of a present field, checked to lie inside the buffer."""
        if slot >= len(entries) or not entries[slot]:
            return None
        pos = table + entries[slot]
        if pos + width > self.size:
            raise self.fail(f"{what} at byte {pos} is past the end")
        return pos

    def scalar(
        self, table: int, entries: tuple[int, ...], slot: int, fmt: str, default: int, what: str
    ) -> int:
        pos = self.field(table, entries, slot, struct.calcsize(fmt), what)
        return default if pos is None else int(struct.unpack_from(fmt, self.buf, pos)[0])

    def target(self, table: int, entries: tuple[int, ...], slot: int, what: str) -> int | None:
        """Where an offset field points, or None when the field is absent."""
        pos = self.field(table, entries, slot, 4, what)
        return None if pos is None else pos + int(_U32.unpack_from(self.buf, pos)[0])

    def blob(self, pos: int | None, what: str) -> bytes:
        """The bytes of a string or byte vector at `pos` (b"" when absent)."""
        if pos is None:
            return b""
        n = self.u32(pos, f"length of {what}")
        end = pos + 4 + n
        if end > self.size:
            raise self.fail(f"{what} at byte {pos} ({n} bytes) runs past the end")
        return self.buf[pos + 4 : end]

    def text(self, pos: int | None, what: str) -> str:
        return self.blob(pos, what).decode("utf-8", "surrogateescape")

    def vector(self, pos: int | None, what: str) -> list[int]:
        """Positions of the objects an offset vector points at (empty when absent)."""
        if pos is None:
            return []
        count = self.u32(pos, f"length of {what}")
        if pos + 4 + 4 * count > self.size:
            raise self.fail(f"{what} at byte {pos} ({count} elements) runs past the end")
        rel = struct.unpack_from(f"<{count}I", self.buf, pos + 4)
        first = pos + 4
        return [first + 4 * i + r for i, r in enumerate(rel)]


class _FmDecoder:
    """Reads every FileMetadata table that uses one vtable with one `unpack_from`: the vtable
    fixes where each field lies relative to the table."""

    __slots__ = ("unpack", "size", "strings", "xattrs", "pick")

    def __init__(self, r: _Reader, entries: tuple[int, ...]) -> None:
        present = sorted((off, slot) for slot, off in enumerate(entries[:14]) if off)
        fmt = "<"
        cursor = 0
        strings: list[tuple[int, int, int]] = []  # (string number, index in unpacked values, field offset)
        index_of: dict[int, int] = {}
        xattrs: tuple[int, int] | None = None
        for index, (off, slot) in enumerate(present):
            kind = _FM_KINDS[slot]
            if off < cursor:
                raise r.fail("a FileMetadata vtable has overlapping fields")
            fmt += "x" * (off - cursor) + _STRUCT_CODE[kind]
            cursor = off + _WIDTH[kind]
            index_of[slot] = index
            if slot == 13:
                xattrs = (index, off)
            elif kind == "u":
                strings.append((_FM_STRING_SLOTS.index(slot), index, off))
        layout = struct.Struct(fmt)
        self.unpack = layout.unpack_from
        self.size = max(layout.size, 4)  # the fields, and at least the table's vtable offset
        self.strings = tuple(strings)
        self.xattrs = xattrs
        # The entry is picked out of `unpacked values + 6 strings + (xattrs, 0)`; absent scalars
        # take the trailing 0, absent strings stay "".
        n = len(present)
        picks = []
        for slot in range(14):
            if slot in _FM_STRING_SLOTS:
                picks.append(n + _FM_STRING_SLOTS.index(slot))
            elif slot == 13:
                picks.append(n + 6)
            else:
                picks.append(index_of.get(slot, n + 7))
        self.pick = itemgetter(*picks)

    def decode(self, r: _Reader, table: int) -> FileMetadata:
        # Positions only grow from `table` by unsigned amounts: checking each end against the
        # buffer's size is all the bounds checking there is to do.
        buf = r.buf
        limit = r.size
        if table + self.size > limit:
            raise r.fail(f"the TOC entry at byte {table} runs past the end")
        raw = self.unpack(buf, table)
        texts = ["", "", "", "", "", ""]
        cache = r.strings
        unpack_u32 = _U32.unpack_from
        for number, index, off in self.strings:
            pos = table + off + raw[index] + 4
            if pos > limit:
                raise r.fail(f"a string of the TOC entry at byte {table} starts past the end")
            end = pos + unpack_u32(buf, pos - 4)[0]
            if end > limit:
                raise r.fail(f"a string of the TOC entry at byte {table} runs past the end")
            if number:  # type, linkname, uname, gname, mod_time repeat a lot: share the str objects
                data = buf[pos:end]
                text = cache.get(data)
                if text is None:
                    text = cache[data] = data.decode("utf-8", "surrogateescape")
                texts[number] = text
            else:
                texts[0] = buf[pos:end].decode("utf-8", "surrogateescape")
        xattrs: tuple[tuple[bytes, bytes], ...] = ()
        if self.xattrs is not None:
            index, off = self.xattrs
            vec = table + off + raw[index]
            if vec + 4 > limit:
                raise r.fail(f"the xattrs of the TOC entry at byte {table} start past the end")
            if unpack_u32(buf, vec)[0]:
                xattrs = tuple(_read_xattr(r, xt) for xt in r.vector(vec, "xattrs vector"))
        return _new_tuple(FileMetadata, self.pick(raw + tuple(texts) + (xattrs, 0)))


def _read_xattr(r: _Reader, table: int) -> tuple[bytes, bytes]:
    if table + 4 > r.size:
        raise r.fail(f"xattr table at byte {table} is past the end")
    vt = table - _I32.unpack_from(r.buf, table)[0]
    fields = r.xattr_fields.get(vt)
    if fields is None:
        _, entries = r.vtable_of(table, "xattr")
        fields = r.xattr_fields[vt] = (
            entries[0] if len(entries) > 0 else 0,
            entries[1] if len(entries) > 1 else 0,
        )
    key_off, value_off = fields
    # The common shape (both present) in a few unpacks; `blob` checks the string bounds.
    if key_off and value_off:
        buf = r.buf
        key_pos = table + key_off
        value_pos = table + value_off
        if value_pos + 4 > r.size or key_pos + 4 > r.size:
            raise r.fail(f"xattr at byte {table} is past the end")
        key = r.blob(key_pos + _U32.unpack_from(buf, key_pos)[0], "xattr key")
        return key, r.blob(value_pos + _U32.unpack_from(buf, value_pos)[0], "xattr value")
    _, entries = r.vtable_of(table, "xattr")
    key = r.blob(r.target(table, entries, 0, "xattr key"), "xattr key")
    return key, r.blob(r.target(table, entries, 1, "xattr value"), "xattr value")


_new_tuple = tuple.__new__


def _read_toc(r: _Reader, toc: int | None) -> tuple[FileMetadata, ...]:
    if toc is None:
        return ()
    _, tf = r.vtable_of(toc, "TOC")
    out = []
    decoders = r.fm_decoders
    buf = r.buf
    size = r.size
    for table in r.vector(r.target(toc, tf, 0, "TOC metadata"), "TOC metadata vector"):
        if table + 4 > size:
            raise r.fail(f"TOC entry table at byte {table} is past the end")
        # Decoders are cached by vtable position, so a known vtable needs no re-checking.
        decoder = decoders.get(table - _I32.unpack_from(buf, table)[0])
        if decoder is None:
            vt, entries = r.vtable_of(table, "TOC entry")
            decoder = decoders[vt] = _FmDecoder(r, entries)
        out.append(decoder.decode(r, table))
    return tuple(out)


def loads(data: bytes | bytearray | memoryview) -> Ztoc:
    """Decode ztoc flatbuffer bytes. TOC entries keep their stored order (the reference's reader
    sorts them by offset afterwards; see `tar_header_offsets`). Strings are decoded from UTF-8
    with `surrogateescape`; xattr keys and values stay bytes.

    Raises ZtocFormatError when the bytes are truncated or malformed: every offset and length is
    checked against the buffer before it is used (the fuzz test holds that true)."""
    r = _Reader(bytes(data))
    try:
        return _read_ztoc(r)
    except ZtocFormatError:
        raise
    except (struct.error, IndexError, ValueError, OverflowError) as exc:  # a check missed: still one line
        raise r.fail(str(exc)) from None


def _read_ztoc(r: _Reader) -> Ztoc:
    if r.size < 8:
        raise r.fail("too short to be a flatbuffer")
    root = r.u32(0, "root offset")
    _, zf = r.vtable_of(root, "Ztoc")
    toc = _read_toc(r, r.target(root, zf, 4, "toc"))
    info = r.target(root, zf, 5, "compression_info")
    if info is None:
        raise ZtocFormatError("ztoc has no compression_info table")
    _, cf = r.vtable_of(info, "CompressionInfo")
    code = r.scalar(info, cf, 0, "<b", _DEFAULT_ALGORITHM_CODE, "compression_algorithm")
    algorithm = _ALGORITHM_NAMES.get(code)
    if algorithm is None:
        raise ZtocFormatError(f"ztoc has an unknown compression algorithm code {code}")
    digest_vector = r.vector(r.target(info, cf, 2, "span_digests"), "span digests")
    digests = tuple(r.text(p, "span digest") for p in digest_vector)
    compression_info = CompressionInfo(
        compression_algorithm=algorithm,
        max_span_id=r.scalar(info, cf, 1, "<i", 0, "max_span_id"),
        span_digests=digests,
        checkpoints=r.blob(r.target(info, cf, 3, "checkpoints"), "checkpoints"),
    )
    return Ztoc(
        version=r.text(r.target(root, zf, 0, "version"), "version"),
        build_tool_identifier=r.text(r.target(root, zf, 1, "build_tool_identifier"), "build_tool_identifier"),
        compressed_archive_size=r.scalar(root, zf, 2, "<q", 0, "compressed_archive_size"),
        uncompressed_archive_size=r.scalar(root, zf, 3, "<q", 0, "uncompressed_archive_size"),
        toc=toc,
        compression_info=compression_info,
    )


# ---------------------------------------------------------------------------------------------
# Reader-side derived data


def tar_header_offsets(entries: Iterable[FileMetadata]) -> list[tuple[int, FileMetadata]]:
    """The TOC sorted by data offset, each entry paired with the offset of its tar header.

    As the reference's reader derives it (`flatbufferToTOC`): the first header is at 0, each next
    one at the previous entry's data end rounded up to 512. The header region includes any PAX/GNU
    extension blocks, so header size = `uncompressed_offset - header_offset`. An entry whose data
    starts before its derived header offset makes the whole ztoc invalid (`invalid toc entry`)."""
    out = []
    next_header = 0
    for entry in sorted(entries, key=lambda e: e.uncompressed_offset):
        if entry.uncompressed_offset < next_header:
            raise ZtocFormatError(
                f"invalid toc entry {entry.name!r}: data at offset {entry.uncompressed_offset} overlaps "
                f"the previous entry, which ends at {next_header}"
            )
        out.append((next_header, entry))
        end = entry.uncompressed_offset + entry.uncompressed_size
        next_header = -(-end // TAR_BLOCK_SIZE) * TAR_BLOCK_SIZE
    return out
