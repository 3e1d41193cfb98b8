"""Streaming tar TOC builder with the semantics of Go's `archive/tar` Reader, which the reference
uses to build ztoc TOCs (fact sheet §3; reference `ztoc/toc_builder.go`).

Bytes of the uncompressed tar stream are fed in order, in chunks of any size. File data is
skipped by counting, never copied; only header blocks and extension records (PAX 'x', GNU 'L'/'K')
are buffered. One FileMetadata per entry Go's `Next()` returns, in tar order, with
`uncompressed_offset` = stream position after the entry's header blocks.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO

from socikit.errors import TarFormatError, UnsupportedLayerError
from socikit.ztoc.model import FileMetadata

BLOCK = 512
MAX_SPECIAL_FILE = 1 << 20  # Go's maxSpecialFileSize for PAX and GNU long-name records
_ZERO_BLOCK = bytes(BLOCK)
_TYPES = {b"0": "reg", b"1": "hardlink", b"2": "symlink", b"3": "char", b"4": "block", b"5": "dir", b"6": "fifo"}
_HEADER_ONLY = frozenset({"hardlink", "symlink", "char", "block", "dir", "fifo"})
_TYPE_NAMES = {
    b"g": "global PAX header", b"S": "GNU sparse file", b"7": "contiguous file", b"V": "GNU volume header",
    b"M": "GNU multi-volume continuation", b"N": "GNU old long name", b"D": "GNU directory dump",
}
_DECIMAL = re.compile(rb"\A[+-]?[0-9]+\Z")
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1

_V7, _USTAR, _STAR, _GNU = "v7", "ustar", "star", "gnu"
# name, mode, uid, gid, size, mtime, chksum, typeflag, linkname, magic+version, uname, gname,
# devmajor, devminor: the fixed fields of a ustar-family header block.
_HEADER_FIELDS = struct.Struct("100s8s8s8s12s12s8s1s100s8s32s32s8s8s")


@dataclass(frozen=True, slots=True)
class TocResult:
    entries: tuple[FileMetadata, ...]  # tar order
    uncompressed_archive_size: int  # stream position when Go's Next() returned io.EOF


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _cstring(field: bytes) -> bytes:
    end = field.find(b"\0")
    return field if end < 0 else field[:end]


def _octal(field: bytes) -> int:
    digits = field.strip(b" \0")
    nul = digits.find(b"\0")
    if nul >= 0:
        digits = digits[:nul]
    if not digits:
        return 0
    if not digits.isdigit():  # int() alone would accept '_', signs and inner spaces
        raise ValueError(f"invalid octal field {field!r}")
    value = int(digits, 8)  # raises for 8 and 9
    if value >> 64:
        raise ValueError(f"octal field {field!r} overflows")
    return value if value <= _INT64_MAX else value - (1 << 64)  # Go: int64(uint64)


def _numeric(field: bytes) -> int:
    """Go's parseNumeric: base-256 two's complement when the high bit is set, else octal."""
    if field[:1] < b"\x80":
        return _octal(field)
    if field and field[0] & 0x80:
        negative = bool(field[0] & 0x40)
        value = 0
        for i, byte in enumerate(field):
            if negative:
                byte ^= 0xFF
            if i == 0:
                byte &= 0x7F
            if value >> 56:
                raise ValueError("base-256 field overflows")
            value = value << 8 | byte
        if value >> 63:
            raise ValueError("base-256 field overflows")
        return ~value if negative else value
    return _octal(field)


def _parse_int64(value: bytes) -> int:
    if not _DECIMAL.match(value):
        raise ValueError(f"not a decimal integer: {value!r}")
    number = int(value)
    if not _INT64_MIN <= number <= _INT64_MAX:
        raise ValueError(f"integer out of range: {value!r}")
    return number


def _parse_pax_time(value: bytes) -> tuple[int, int]:
    """Go's parsePAXTime: seconds[.fraction]; fraction padded/truncated to 9 digits."""
    secs_text, dot, frac = value.partition(b".")
    secs = _parse_int64(secs_text)
    if not dot or not frac:
        return secs, 0
    if not frac.isdigit():
        raise ValueError(f"invalid PAX time {value!r}")
    nanos = int(frac[:9].ljust(9, b"0"))
    if secs_text.startswith(b"-"):
        return secs, -nanos
    return secs, nanos


def _days_to_civil(days: int) -> tuple[int, int, int]:
    """Proleptic Gregorian (year, month, day) of a day count since 1970-01-01."""
    days += 719468
    era = days // 146097
    doe = days - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (1 if month <= 2 else 0)
    return year, month, day


def format_mod_time(seconds: int, nanos: int = 0) -> str:
    """Go's `time.Unix(seconds, nanos).UTC().MarshalText()`; "" when the year is outside 0..9999
    (MarshalText fails there and the reference stores the empty string)."""
    seconds += nanos // 1_000_000_000
    nanos %= 1_000_000_000
    days, rem = divmod(seconds, 86400)
    year, month, day = _days_to_civil(days)
    if not 0 <= year <= 9999:
        return ""
    hour, rem = divmod(rem, 3600)
    minute, second = divmod(rem, 60)
    text = f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"
    if nanos:
        text += "." + f"{nanos:09d}".rstrip("0")
    return text + "Z"


def _parse_pax_records(data: bytes, offset: int) -> dict[bytes, bytes]:
    """Go's parsePAX: "%d key=value\\n" records, validated like parsePAXRecord."""
    records: dict[bytes, bytes] = {}
    rest = data
    while rest:
        length_text, space, _ = rest.partition(b" ")
        try:
            length = _parse_int64(length_text) if space else -1
        except ValueError:
            length = -1
        if length < 5 or length > len(rest) or length <= len(length_text) + 1:
            raise TarFormatError(f"malformed PAX record in the extended header at offset {offset}")
        record, rest = rest[len(length_text) + 1 : length], rest[length:]
        if not record.endswith(b"\n"):
            raise TarFormatError(f"PAX record without a newline in the extended header at offset {offset}")
        key, eq, value = record[:-1].partition(b"=")
        if not eq or not key:
            raise TarFormatError(f"PAX record without key=value in the extended header at offset {offset}")
        nul_checked = value if key in (b"path", b"linkpath", b"uname", b"gname") else key
        if b"\0" in nul_checked:
            raise TarFormatError(f"PAX record {key!r} holds a NUL byte (extended header at offset {offset})")
        records[key] = value
    return records


def _byte_sum(block: bytes) -> int:
    """Sum of a 512-byte block's bytes. adler32's low half is 1 + the byte sum mod 65521, exact
    for 256 bytes (at most 65,280), and runs in C: 6x faster than sum() on every header."""
    return (zlib.adler32(block[:256]) & 0xFFFF) + (zlib.adler32(block[256:]) & 0xFFFF) - 2


class TocBuilder:
    """Incremental tar walker: `feed` consecutive bytes, then `finish`."""

    def __init__(self) -> None:
        self._entries: list[FileMetadata] = []
        self._pos = 0  # stream bytes consumed
        self._buf = bytearray()
        self._need = BLOCK  # bytes to collect in _buf before _process
        self._state = "header"  # header | zero | special | done
        self._skip_data = 0
        self._skip_pad = 0
        self._special: tuple[bytes, int, int] | None = None  # (typeflag, header offset, padding)
        self._pax: dict[bytes, bytes] | None = None
        self._long_name: bytes | None = None
        self._long_link: bytes | None = None
        self._end: int | None = None
        self._pad_started = False  # inside an entry's padding (an end there is an error)

    @property
    def done(self) -> bool:
        return self._state == "done"

    @property
    def entries(self) -> tuple[FileMetadata, ...]:
        """The entries parsed so far (the validator re-parses single header regions with this)."""
        return tuple(self._entries)

    def feed(self, data: bytes | bytearray | memoryview) -> bool:
        """Consume the next bytes of the stream; False once the end of the archive was reached."""
        if self._state == "done":
            return False
        view = memoryview(data).cast("B") if not isinstance(data, bytes) else data
        i, n = 0, len(view)
        while i < n:
            if self._skip_data:
                take = min(self._skip_data, n - i)
                self._skip_data -= take
                i += take
                self._pos += take
                continue
            if self._skip_pad:
                take = min(self._skip_pad, n - i)
                self._skip_pad -= take
                self._pad_started = bool(self._skip_pad)
                i += take
                self._pos += take
                continue
            missing = self._need - len(self._buf)
            if not self._buf and n - i >= missing:
                chunk = bytes(view[i : i + missing])  # the common case: a whole block in one slice
            else:
                take = min(missing, n - i)
                self._buf += view[i : i + take]
                i += take
                self._pos += take
                if len(self._buf) < self._need:
                    break
                chunk = bytes(self._buf)
                self._buf.clear()
                missing = 0
            i += missing
            self._pos += missing
            self._process(chunk)
            if self._state == "done":
                return False
        return True

    def finish(self) -> TocResult:
        """The TOC; raises TarFormatError where Go's reader would have failed on the early end."""
        if self._state != "done":
            # Go accepts a stream that ends exactly at a header boundary, after one zero block, or
            # with an entry's padding missing altogether (io.EOF); anything cut shorter is an error.
            if self._state == "special" or self._buf or self._skip_data or self._pad_started:
                raise TarFormatError(f"tar stream ends in the middle of an entry (at byte {self._pos})")
            self._end = self._pos
        assert self._end is not None
        return TocResult(tuple(self._entries), self._end)

    # -- block processing -------------------------------------------------------------------

    def _process(self, chunk: bytes) -> None:
        if self._state == "special":
            self._finish_special(chunk)
        elif self._state == "zero":
            if chunk == _ZERO_BLOCK:
                self._state = "done"
                self._end = self._pos
            else:
                raise TarFormatError(f"a zero block followed by a non-zero block at offset {self._pos - BLOCK}")
        elif chunk == _ZERO_BLOCK:
            self._state = "zero"
        else:
            self._header(chunk)

    def _header(self, blk: bytes) -> None:
        offset = self._pos - BLOCK
        fmt = self._format(blk, offset)
        (name_f, mode_f, uid_f, gid_f, size_f, mtime_f, _chk, typeflag, link_f, _magic, uname_f, gname_f,
         major_f, minor_f) = _HEADER_FIELDS.unpack_from(blk)
        try:
            name = _cstring(name_f)
            # Fast path for the usual "digits then NUL" octal fields; anything else takes Go's
            # general rules in _numeric.
            mode = int(mode_f[:-1], 8) if mode_f[-1] == 0 and mode_f[:-1].isdigit() else _numeric(mode_f)
            uid = int(uid_f[:-1], 8) if uid_f[-1] == 0 and uid_f[:-1].isdigit() else _numeric(uid_f)
            gid = int(gid_f[:-1], 8) if gid_f[-1] == 0 and gid_f[:-1].isdigit() else _numeric(gid_f)
            size = int(size_f[:-1], 8) if size_f[-1] == 0 and size_f[:-1].isdigit() else _numeric(size_f)
            mtime = int(mtime_f[:-1], 8) if mtime_f[-1] == 0 and mtime_f[:-1].isdigit() else _numeric(mtime_f)
            linkname = _cstring(link_f)
            uname = gname = b""
            devmajor = devminor = 0
            if fmt != _V7:
                uname = _cstring(uname_f)
                gname = _cstring(gname_f)
                devmajor = int(major_f[:-1], 8) if major_f[-1] == 0 and major_f[:-1].isdigit() else _numeric(major_f)
                devminor = int(minor_f[:-1], 8) if minor_f[-1] == 0 and minor_f[:-1].isdigit() else _numeric(minor_f)
                prefix = b""
                if fmt == _USTAR:
                    prefix = _cstring(blk[345:500])
                elif fmt == _STAR:
                    prefix = _cstring(blk[345:476])
                elif fmt == _GNU:
                    try:
                        if blk[345]:
                            _numeric(blk[345:357])
                        if blk[357]:
                            _numeric(blk[357:369])
                    except ValueError:
                        # Old Go writers put a ustar prefix here; Go then reads it as one.
                        candidate = _cstring(blk[345:500])
                        if candidate.isascii():
                            prefix = candidate
                if prefix:
                    name = prefix + b"/" + name
        except ValueError as exc:
            raise TarFormatError(f"invalid tar header at offset {offset}: {exc}") from None

        if typeflag in (b"x", b"L", b"K"):
            if size < 0 or size > MAX_SPECIAL_FILE:
                raise TarFormatError(f"extension header at offset {offset} has an unusable size {size}")
            self._special = (typeflag, offset, -size % BLOCK)
            if size == 0:
                self._finish_special(b"")
            else:
                self._state = "special"
                self._need = size
            return
        if typeflag not in _TYPES and typeflag != b"\0":
            described = _TYPE_NAMES.get(typeflag, f"type {typeflag.decode('latin-1')!r}")
            raise UnsupportedLayerError(
                f"tar entry {_text(name)!r} at offset {offset} is a {described} "
                f"(typeflag {typeflag.decode('latin-1')!r}), which the ztoc format cannot describe"
            )
        mod_seconds, mod_nanos = mtime, 0
        records = self._pax or {}
        for key, value in records.items():
            if not value:
                continue  # an empty value keeps the header's value
            try:
                if key == b"path":
                    name = value
                elif key == b"linkpath":
                    linkname = value
                elif key == b"uname":
                    uname = value
                elif key == b"gname":
                    gname = value
                elif key == b"uid":
                    uid = _parse_int64(value)
                elif key == b"gid":
                    gid = _parse_int64(value)
                elif key == b"mtime":
                    mod_seconds, mod_nanos = _parse_pax_time(value)
                elif key in (b"atime", b"ctime"):
                    _parse_pax_time(value)
                elif key == b"size":
                    size = _parse_int64(value)
                elif key.startswith(b"GNU.sparse."):
                    raise UnsupportedLayerError(
                        f"tar entry {_text(name)!r} at offset {offset} is a PAX sparse file, "
                        "which the ztoc format cannot describe"
                    )
            except ValueError as exc:
                raise TarFormatError(f"invalid PAX record {key!r} for the entry at offset {offset}: {exc}") from None
        if self._long_name:
            name = self._long_name
        if self._long_link:
            linkname = self._long_link
        if typeflag == b"\0":
            kind = "dir" if name.endswith(b"/") else "reg"
        else:
            kind = _TYPES[typeflag]
        data_size = 0 if kind in _HEADER_ONLY else size
        if data_size < 0:
            raise TarFormatError(f"tar entry at offset {offset} has a negative size")
        self._entries.append(
            FileMetadata(
                name=_text(name),
                type=kind,
                uncompressed_offset=self._pos,
                uncompressed_size=size,
                linkname=_text(linkname),
                mode=mode,
                uid=uid & 0xFFFFFFFF,
                gid=gid & 0xFFFFFFFF,
                uname=_text(uname),
                gname=_text(gname),
                mod_time=format_mod_time(mod_seconds, mod_nanos),
                devmajor=devmajor,
                devminor=devminor,
                xattrs=tuple(sorted(records.items())),
            )
        )
        self._pax = None
        self._long_name = self._long_link = None
        self._skip_data = data_size
        self._skip_pad = -data_size % BLOCK

    def _finish_special(self, data: bytes) -> None:
        assert self._special is not None
        typeflag, offset, padding = self._special
        self._special = None
        self._skip_pad = padding
        self._state = "header"
        self._need = BLOCK
        if typeflag == b"x":
            self._pax = _parse_pax_records(data, offset)
        elif typeflag == b"L":
            self._long_name = _cstring(data)
        else:
            self._long_link = _cstring(data)

    @staticmethod
    def _format(blk: bytes, offset: int) -> str:
        try:
            stored = _octal(blk[148:156])
        except ValueError:
            stored = -1
        unsigned = _byte_sum(blk) - sum(blk[148:156]) + 8 * 32
        if stored != unsigned:
            signed = sum(b - 256 if b > 127 else b for b in blk) - sum(
                b - 256 if b > 127 else b for b in blk[148:156]
            ) + 8 * 32
            if stored != signed:
                raise TarFormatError(
                    f"invalid tar header at offset {offset}: checksum mismatch (not a tar stream, or corrupt)"
                )
        magic, version, trailer = blk[257:263], blk[263:265], blk[508:512]
        if magic == b"ustar\0":
            return _STAR if trailer == b"tar\0" else _USTAR
        if magic == b"ustar " and version == b" \0":
            return _GNU
        return _V7


def build_toc(stream: BinaryIO, *, chunk_size: int = 1 << 20) -> TocResult:
    """The TOC of the tar read from `stream`."""
    builder = TocBuilder()
    while chunk := stream.read(chunk_size):
        if not builder.feed(chunk):
            break
    return builder.finish()
