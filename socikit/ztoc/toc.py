"""Streaming tar TOC builder with the semantics of Go's `archive/tar` Reader, which the reference
runs over the uncompressed layer to build ztoc TOCs (SOCI ztoc v0.9; fact sheet §3; reference
`ztoc/toc_builder.go` `metadataFromTarReader`).

Bytes of the uncompressed tar stream are fed in order, in chunks of any size. File data is skipped
by counting, never copied or looked at; only header blocks and extension records (PAX 'x', GNU
'L'/'K') are buffered when they straddle two chunks. The result is one FileMetadata per entry
Go's `Next()` returns, in tar order, with `uncompressed_offset` = stream position just after the
entry's header blocks, and the stream position at which `Next()` returned io.EOF.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO, NoReturn

from socikit.errors import TarFormatError, UnsupportedLayerError
from socikit.ztoc.model import FileMetadata

__all__ = [
    "HeaderCaches",
    "HeaderFields",
    "TocBuilder",
    "TocResult",
    "build_toc",
    "end_of_archive",
    "format_mod_time",
    "parse_header",
    "replay_failure",
]

BLOCK = 512
MAX_SPECIAL_FILE = 1 << 20  # Go's maxSpecialFileSize: PAX and GNU long-name records
DEFAULT_CHUNK_SIZE = 1 << 20
_ZERO_BLOCK = bytes(BLOCK)

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_DECIMAL = re.compile(rb"[+-]?[0-9]+")  # what Go's strconv.ParseInt(s, 10, 64) accepts

# The ustar-family header block: name, mode+uid+gid (3 x 8), size, mtime, chksum, typeflag,
# linkname, magic, version, uname+gname+devmajor+devminor (32 + 32 + 8 + 8), prefix (155),
# 8 unused bytes, STAR trailer. Neighbouring fields that layers repeat are unpacked together and
# parsed once per distinct value (see `parse_header`).
_HEADER = struct.Struct("100s24s12s12s8sc100s6s2s80s155s8s4s")

_MAGIC_USTAR = b"ustar\0"
_MAGIC_GNU = b"ustar "
_VERSION_GNU = b" \0"
_TRAILER_STAR = b"tar\0"

# Formats as Go's block.getFormat guesses them; every one but V7 carries uname/gname/devices.
_V7, _USTAR, _GNU, _STAR = 0, 1, 2, 3

_TYPES = {b"0": "reg", b"1": "hardlink", b"2": "symlink", b"3": "char", b"4": "block", b"5": "dir", b"6": "fifo"}
# Go's isHeaderOnlyType: these never have a data section, whatever their size field says.
_HEADER_ONLY_FLAGS = frozenset({b"1", b"2", b"3", b"4", b"5", b"6"})
_HEADER_ONLY = frozenset({"hardlink", "symlink", "char", "block", "dir", "fifo"})
_EXTENSIONS = frozenset({b"x", b"L", b"K"})
_UNSUPPORTED_NAMES = {
    b"g": "global PAX header",
    b"S": "GNU sparse file",
    b"7": "contiguous file",
    b"V": "GNU volume header",
    b"M": "GNU multi-volume continuation",
    b"N": "GNU old long name",
    b"D": "GNU directory dump",
}

# PAX records whose values are checked for NUL instead of their keys (Go's validPAXRecord).
_PAX_NUL_CHECKED_VALUES = frozenset({b"path", b"linkpath", b"uname", b"gname"})
_SPARSE_OFFSET = b"GNU.sparse.offset"
_SPARSE_NUMBYTES = b"GNU.sparse.numbytes"

# What the builder is collecting bytes for.
_WANT_HEADER, _WANT_SECOND_ZERO, _WANT_RECORD = 0, 1, 2

_TIME_CACHE_LIMIT = 1 << 14
_FIELD_CACHE_LIMIT = 1 << 14


@dataclass(frozen=True, slots=True)
class TocResult:
    """The TOC of one tar stream."""

    entries: Sequence[FileMetadata]  # tar order (a tuple here; the native parser's compact TOC)
    uncompressed_archive_size: int  # stream position (bytes) when Go's Next() returned io.EOF


# -- field parsing (Go's archive/tar strconv.go rules) -------------------------------------------


def _text(raw: bytes) -> str:
    """A Go string (arbitrary bytes) as str; non-UTF-8 bytes survive as surrogates."""
    return raw.decode("utf-8", "surrogateescape")


def _cstring(field: bytes) -> bytes:
    """Go's parseString: the bytes before the first NUL."""
    end = field.find(b"\0")
    return field if end < 0 else field[:end]


def _octal(field: bytes) -> int:
    """Go's parseOctal: trim spaces and NULs at both ends, cut at a NUL, parse base 8 as uint64,
    then reinterpret as int64."""
    digits = _cstring(field.strip(b" \0"))
    if not digits:
        return 0
    if not digits.isdigit():  # int() alone would also take '_', a sign and inner whitespace
        raise ValueError(f"invalid octal number {field!r}")
    value = int(digits, 8)  # raises on the digits 8 and 9
    if value >> 64:
        raise ValueError(f"octal number {field!r} overflows 64 bits")
    return value - (1 << 64) if value >> 63 else value


def _numeric(field: bytes) -> int:
    """Go's parseNumeric: base-256 two's complement when the high bit is set, else octal."""
    if not field or field[0] < 0x80:
        return _octal(field)
    invert = 0xFF if field[0] & 0x40 else 0
    value = (field[0] ^ invert) & 0x7F
    for byte in field[1:]:
        if value >> 56:
            raise ValueError("base-256 number overflows 64 bits")
        value = value << 8 | (byte ^ invert)
    if value >> 63:
        raise ValueError("base-256 number overflows 64 bits")
    return ~value if invert else value


def _number(field: bytes) -> int:
    """A numeric header field; the common "octal digits then NUL" shape skips the general rules."""
    if field[-1] == 0:
        digits = field[:-1]
        if digits.isdigit():
            return int(digits, 8)  # at most 11 digits: no overflow; '8'/'9' raise ValueError
    return _numeric(field)


def _parse_int64(value: bytes) -> int:
    """Go's strconv.ParseInt(value, 10, 64)."""
    if _DECIMAL.fullmatch(value) is None:
        raise ValueError(f"{value!r} is not a decimal integer")
    number = int(value)
    if not _INT64_MIN <= number <= _INT64_MAX:
        raise ValueError(f"{value!r} does not fit in 64 bits")
    return number


def _parse_pax_time(value: bytes) -> tuple[int, int]:
    """Go's parsePAXTime: (seconds, nanoseconds) of "seconds[.fraction]"; the fraction is
    right-padded or truncated to 9 digits and takes the sign of the seconds."""
    secs_text, _, frac = value.partition(b".")
    secs = _parse_int64(secs_text)
    if not frac:
        return secs, 0
    if not frac.isdigit():
        raise ValueError(f"{value!r} is not a PAX time")
    nanos = int(frac[:9].ljust(9, b"0"))
    return (secs, -nanos) if secs_text.startswith(b"-") else (secs, nanos)


def _days_to_civil(days: int) -> tuple[int, int, int]:
    """Proleptic Gregorian (year, month, day) of a day count relative to 1970-01-01."""
    days += 719468  # shift the epoch to 0000-03-01, so leap days end each 4-year cycle
    era = days // 146097
    day_of_era = days - era * 146097
    year_of_era = (day_of_era - day_of_era // 1460 + day_of_era // 36524 - day_of_era // 146096) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    month_index = (5 * day_of_year + 2) // 153  # 0 = March
    day = day_of_year - (153 * month_index + 2) // 5 + 1
    month = month_index + 3 if month_index < 10 else month_index - 9
    year = year_of_era + era * 400 + (1 if month <= 2 else 0)
    return year, month, day


def format_mod_time(seconds: int, nanos: int = 0) -> str:
    """Go's `time.Unix(seconds, nanos).UTC().MarshalText()`: RFC 3339 with the fraction's
    trailing zeros trimmed, e.g. "2023-11-14T22:13:20.5Z". Returns "" when the year is outside
    0..9999, where MarshalText fails and the reference stores the empty string."""
    seconds += nanos // 1_000_000_000
    nanos %= 1_000_000_000
    days, rest = divmod(seconds, 86400)
    year, month, day = _days_to_civil(days)
    if not 0 <= year <= 9999:
        return ""
    hour, rest = divmod(rest, 3600)
    minute, second = divmod(rest, 60)
    text = f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"
    if nanos:
        text += "." + f"{nanos:09d}".rstrip("0")
    return text + "Z"


def _parse_pax_records(data: bytes, offset: int) -> dict[bytes, bytes]:
    """Go's parsePAX over the payload of an 'x' record whose header starts at `offset`.

    Records are "<length> <key>=<value>\\n", validated like Go's parsePAXRecord/validPAXRecord.
    GNU sparse 0.0 `offset`/`numbytes` pairs are folded into one `GNU.sparse.map` record, as Go does.
    """
    records: dict[bytes, bytes] = {}
    sparse_map: list[bytes] = []
    pos, total = 0, len(data)
    while pos < total:
        space = data.find(b" ", pos)
        length = -1
        if space >= 0:
            try:
                length = _parse_int64(data[pos:space])
            except ValueError:
                pass
        if length < 5 or length > total - pos or length <= space - pos + 1:
            raise TarFormatError(f"malformed PAX record length in the extended header at offset {offset}")
        end = pos + length
        if data[end - 1] != 0x0A:
            raise TarFormatError(f"PAX record without its newline in the extended header at offset {offset}")
        key, equals, value = data[space + 1 : end - 1].partition(b"=")
        pos = end
        if not equals or not key:
            raise TarFormatError(f"PAX record without a key=value pair in the extended header at offset {offset}")
        if b"\0" in (value if key in _PAX_NUL_CHECKED_VALUES else key):
            raise TarFormatError(f"PAX record {key!r} holds a NUL byte (extended header at offset {offset})")
        if key == _SPARSE_OFFSET or key == _SPARSE_NUMBYTES:
            expected = _SPARSE_OFFSET if len(sparse_map) % 2 == 0 else _SPARSE_NUMBYTES
            if key != expected or b"," in value:
                raise TarFormatError(f"malformed GNU sparse records in the extended header at offset {offset}")
            sparse_map.append(value)
        else:
            records[key] = value
    if sparse_map:
        records[b"GNU.sparse.map"] = b",".join(sparse_map)
    return records


def _is_pax_sparse(records: dict[bytes, bytes]) -> bool:
    """Go's readGNUSparsePAXHeaders test: does Go read this entry as a GNU sparse file?"""
    major = records.get(b"GNU.sparse.major", b"")
    minor = records.get(b"GNU.sparse.minor", b"")
    if (major == b"0" and minor in (b"0", b"1")) or (major == b"1" and minor == b"0"):
        return True
    if major or minor:
        return False  # an unknown sparse version: Go reads a plain file
    return bool(records.get(b"GNU.sparse.map"))


def _describe_type(typeflag: bytes) -> str:
    name = _UNSUPPORTED_NAMES.get(typeflag)
    shown = repr(typeflag.decode("latin-1"))
    return f"type {shown} ({name})" if name else f"type {shown}"


# -- one header block (pure, but for the caches the caller passes) --------------------------------

# What `parse_header` returns: typeflag, name, linkname (bytes, before any PAX or GNU extension),
# size, mode, uid, gid, mtime (seconds), uname, gname, devmajor, devminor.
HeaderFields = tuple[bytes, bytes, bytes, int, int, int, int, int, str, str, int, int]


def _signed_sum(block: bytes | memoryview, start: int) -> int:
    """The byte sum with bytes read as int8 (old writers), checksum field as spaces."""
    data = bytes(block[start : start + BLOCK])
    high = sum(1 for byte in data[:148] + data[156:] if byte & 0x80)
    return sum(data[:148]) + sum(data[156:]) - 256 * high + 8 * 0x20


def _gnu_prefix(prefix_f: bytes) -> bytes:
    """GNU headers hold atime and ctime where ustar has its prefix. Go parses them, and when
    either fails it takes the field as a ustar prefix, if ASCII (files from Go before 1.8)."""
    try:
        if prefix_f[0]:
            _numeric(prefix_f[0:12])
        if prefix_f[12]:
            _numeric(prefix_f[12:24])
    except ValueError:
        candidate = _cstring(prefix_f)
        return candidate if candidate.isascii() else b""
    return b""


def _ids(field: bytes) -> tuple[int, int, int]:
    return _number(field[:8]), _number(field[8:16]), _number(field[16:24])


def _owner(field: bytes) -> tuple[str, str, int, int]:
    return _text(_cstring(field[:32])), _text(_cstring(field[32:64])), _number(field[64:72]), _number(field[72:80])


class HeaderCaches:
    """Raw header fields -> parsed values, for fields layers repeat: mode+uid+gid, mtime, and
    owner names with device numbers. Bounded: cleared when one grows past a limit."""

    __slots__ = ("ids", "mtimes", "owners")

    def __init__(self) -> None:
        self.ids: dict[bytes, tuple[int, int, int]] = {}
        self.mtimes: dict[bytes, int] = {}
        self.owners: dict[bytes, tuple[str, str, int, int]] = {}

    def bound(self) -> None:
        if len(self.ids) > _FIELD_CACHE_LIMIT or len(self.mtimes) > _FIELD_CACHE_LIMIT:
            self.ids.clear()
            self.mtimes.clear()
        if len(self.owners) > _FIELD_CACHE_LIMIT:
            self.owners.clear()


def parse_header(block: bytes | memoryview, start: int, offset: int, total: int, caches: HeaderCaches) -> HeaderFields:
    """The fields of the non-zero header block `block[start:start + 512]` at stream `offset`,
    whose byte sum is `total`, read with Go's archive/tar rules: checksum (unsigned or signed
    sum), format guess (V7, ustar, GNU, STAR), numbers (octal or base-256), the ustar/STAR prefix
    and GNU's atime/ctime. Pure but for `caches`, which only memoize. Raises TarFormatError where
    Go's reader fails."""
    (name, ids_f, size_f, mtime_f, chksum_f, typeflag, link_f, magic, version, owner_f, prefix_f, _unused,
     trailer) = _HEADER.unpack_from(block, start)  # fmt: skip

    # Go's getFormat: the stored checksum must match the unsigned or the signed byte sum,
    # with the checksum field itself counted as eight spaces.
    expected = total - sum(chksum_f) + 8 * 0x20
    try:
        stored = int(chksum_f[:6], 8) if chksum_f[6:] == b"\0 " and chksum_f[:6].isdigit() else _octal(chksum_f)
    except ValueError:
        stored = None
    if stored is None or (stored != expected and stored != _signed_sum(block, start)):
        raise TarFormatError(f"invalid tar header at offset {offset}: checksum mismatch (not a tar stream?)")
    if magic == _MAGIC_USTAR:
        fmt = _STAR if trailer == _TRAILER_STAR else _USTAR
    elif magic == _MAGIC_GNU and version == _VERSION_GNU:
        fmt = _GNU
    else:
        fmt = _V7

    try:
        name = name.partition(b"\0")[0]
        linkname = link_f.partition(b"\0")[0]
        size = _number(size_f)
        ids = caches.ids.get(ids_f)
        if ids is None:
            ids = caches.ids[ids_f] = _ids(ids_f)
        mode, uid, gid = ids
        mtime = caches.mtimes.get(mtime_f)
        if mtime is None:
            mtime = caches.mtimes[mtime_f] = _number(mtime_f)
        if fmt == _V7:
            return typeflag, name, linkname, size, mode, uid, gid, mtime, "", "", 0, 0
        # Every later format carries owner names and device numbers.
        owner = caches.owners.get(owner_f)
        if owner is None:
            owner = caches.owners[owner_f] = _owner(owner_f)
        if fmt == _USTAR:
            prefix = prefix_f.partition(b"\0")[0]
        elif fmt == _GNU:
            prefix = _gnu_prefix(prefix_f)
        else:
            prefix = _cstring(prefix_f[:131])
            _numeric(prefix_f[131:143])  # STAR atime and ctime: Go parses them, so
            _numeric(prefix_f[143:155])  # a malformed one fails the header
    except ValueError as exc:
        raise TarFormatError(f"invalid tar header at offset {offset}: {exc}") from None
    if prefix:
        name = prefix + b"/" + name
    uname, gname, devmajor, devminor = owner
    return typeflag, name, linkname, size, mode, uid, gid, mtime, uname, gname, devmajor, devminor


def _apply_pax(
    records: dict[bytes, bytes], fields: HeaderFields, offset: int
) -> tuple[bytes, bytes, str, str, int, int, int, int, int]:
    """Go's mergePAX: (name, linkname, uname, gname, uid, gid, size, mtime, nanos) after the
    entry's PAX records override its header; an empty value keeps the header's value."""
    _, name, linkname, size, _, uid, gid, mtime, uname, gname, _, _ = fields
    nanos = 0
    try:
        for key, value in records.items():
            if not value:
                continue
            if key == b"path":
                name = value
            elif key == b"linkpath":
                linkname = value
            elif key == b"uname":
                uname = _text(value)
            elif key == b"gname":
                gname = _text(value)
            elif key == b"uid":
                uid = _parse_int64(value)
            elif key == b"gid":
                gid = _parse_int64(value)
            elif key == b"size":
                size = _parse_int64(value)
            elif key == b"mtime":
                mtime, nanos = _parse_pax_time(value)
            elif key == b"atime" or key == b"ctime":
                _parse_pax_time(value)  # unused, but Go rejects a malformed one
    except ValueError as exc:
        raise TarFormatError(f"invalid PAX record for the tar entry at offset {offset}: {exc}") from None
    return name, linkname, uname, gname, uid, gid, size, mtime, nanos


# -- the builder ----------------------------------------------------------------------------------


class TocBuilder:
    """Incremental tar walker: `feed` the uncompressed stream's bytes in order, then `finish`.

    Errors: TarFormatError where Go's reader fails (bad checksum or number, malformed PAX record,
    negative size, early end); UnsupportedLayerError for entries the ztoc format cannot describe
    (global PAX headers, GNU sparse files, and any typeflag besides 0-6 and NUL).
    """

    def __init__(self) -> None:
        self._entries: list[FileMetadata] = []
        self._pos = 0  # bytes of the stream consumed so far
        self._skip = 0  # bytes still to skip (file data and padding) before the next block
        self._data_end = 0  # stream position where the last entry's data ends
        self._want = _WANT_HEADER
        self._need = BLOCK  # bytes the current `_want` unit is made of
        self._buf = bytearray()  # a unit that straddles chunks
        self._record: tuple[bytes, int, int] | None = None  # pending extension: typeflag, header offset, padding
        self._pax: dict[bytes, bytes] | None = None
        self._long_name = b""
        self._long_link = b""
        self._end: int | None = None
        self._times: dict[int, str] = {}  # whole-second mtime -> mod_time text
        self._caches = HeaderCaches()

    @property
    def done(self) -> bool:
        """True once the end of the archive was reached."""
        return self._end is not None

    @property
    def entries(self) -> tuple[FileMetadata, ...]:
        """The entries parsed so far (the validator re-parses single header regions with this)."""
        return tuple(self._entries)

    def feed(self, data: bytes | bytearray | memoryview) -> bool:
        """Consume the next consecutive bytes of the uncompressed tar stream. Returns False once
        the end of the archive was reached (Go's Next() returned io.EOF); later feeds are ignored."""
        if self._end is not None:
            return False
        self._caches.bound()  # once per chunk: cheaper than per header, and a chunk adds few
        view = data if isinstance(data, bytes) else memoryview(data).cast("B")
        n = len(view)
        base = self._pos
        i = self._skip
        if i >= n:
            self._skip = i - n
            self._pos = base + n
            return True
        self._skip = 0
        buf = self._buf
        while i < n:
            need = self._need
            if buf:
                take = min(need - len(buf), n - i)
                buf += view[i : i + take]
                i += take
                if len(buf) < need:
                    break
                unit: bytes | memoryview = bytes(buf)
                start = 0
                buf.clear()
            elif n - i >= need:
                unit, start = view, i
                i += need
            else:
                buf += view[i:n]
                i = n
                break
            i += self._process(unit, start, base + i)
            if self._end is not None:
                self._pos = base + i
                return False
        if i > n:
            self._skip = i - n
        self._pos = base + n
        return True

    def finish(self) -> TocResult:
        """Call after the last byte. Raises TarFormatError where Go's reader would fail on the
        early end: inside a header block, an extension record or file data (ErrUnexpectedEOF).
        An end at a header boundary, after one zero block, or inside padding is io.EOF to Go."""
        if self._end is None:
            pos = self._pos
            if self._want == _WANT_RECORD:
                raise TarFormatError(f"tar stream ends inside an extension record (at byte {pos})")
            if self._buf:
                raise TarFormatError(f"tar stream ends inside a header block (at byte {pos})")
            if pos < self._data_end:
                raise TarFormatError(f"tar stream ends inside file data (at byte {pos}, data ends at {self._data_end})")
            self._end = pos
        return TocResult(tuple(self._entries), self._end)

    # -- units --------------------------------------------------------------------------------

    def _process(self, unit: bytes | memoryview, start: int, end: int) -> int:
        """Handle one complete unit that ends at stream position `end`; returns the bytes to skip."""
        want = self._want
        if want == _WANT_HEADER:
            return self._header(unit, start, end)
        if want == _WANT_SECOND_ZERO:
            if bytes(unit[start : start + BLOCK]) == _ZERO_BLOCK:
                self._end = end
                return 0
            raise TarFormatError(f"a zero block followed by a non-zero block at offset {end - BLOCK}")
        return self._finish_record(bytes(unit[start : start + self._need]))

    def _header(self, unit: bytes | memoryview, start: int, end: int) -> int:
        """A header block: the end-of-archive marker, an extension record's header or an entry."""
        offset = end - BLOCK
        # Byte sum of the block from two adler32 halves: the low 16 bits are 1 + the sum of the
        # bytes modulo 65521, which is exact for 256 bytes (at most 65,280), and it runs in C.
        total = (
            (zlib.adler32(unit[start : start + 256]) & 0xFFFF)
            + (zlib.adler32(unit[start + 256 : start + BLOCK]) & 0xFFFF)
            - 2
        )
        if total == 0:  # bytes are never negative: a zero sum is an all-zero block
            self._want = _WANT_SECOND_ZERO
            return 0
        fields = parse_header(unit, start, offset, total, self._caches)
        typeflag = fields[0]
        # Go's first handleRegularFile runs on the raw header, before any extension applies.
        if fields[3] < 0 and typeflag not in _HEADER_ONLY_FLAGS:
            raise TarFormatError(f"tar header at offset {offset} has a negative size ({fields[3]})")
        if typeflag in _EXTENSIONS:
            return self._extension_header(typeflag, fields[3], offset)
        if typeflag == b"g":
            raise UnsupportedLayerError(
                f"tar entry {_text(fields[1])!r} at offset {offset} has {_describe_type(typeflag)}, "
                "which the ztoc format cannot describe"
            )
        return self._entry_header(fields, offset, end)

    def _extension_header(self, typeflag: bytes, size: int, offset: int) -> int:
        """A PAX 'x' or GNU 'L'/'K' header: its record follows; it applies to the next entry."""
        if size > MAX_SPECIAL_FILE:
            raise TarFormatError(
                f"extension header at offset {offset} holds {size} bytes, over the {MAX_SPECIAL_FILE}-byte limit"
            )
        self._record = (typeflag, offset, -size % BLOCK)
        if size == 0:
            return self._finish_record(b"")
        self._want = _WANT_RECORD
        self._need = size
        return 0

    def _entry_header(self, fields: HeaderFields, offset: int, end: int) -> int:
        """An entry's own header (after its extensions, if any): one FileMetadata; returns the
        bytes of data and padding to skip."""
        typeflag, name, linkname, size, mode, uid, gid, mtime, uname, gname, devmajor, devminor = fields
        xattrs: tuple[tuple[bytes, bytes], ...] = ()
        nanos = 0
        records = self._pax
        if records is not None:
            self._pax = None
            name, linkname, uname, gname, uid, gid, size, mtime, nanos = _apply_pax(records, fields, offset)
            xattrs = tuple(sorted(records.items()))
        if self._long_name:
            name = self._long_name
            self._long_name = b""
        if self._long_link:
            linkname = self._long_link
            self._long_link = b""

        kind = _TYPES.get(typeflag)
        if kind is None:
            if typeflag != b"\0":
                raise UnsupportedLayerError(
                    f"tar entry {_text(name)!r} at offset {offset} has {_describe_type(typeflag)}, "
                    "which the ztoc format cannot describe"
                )
            kind = "dir" if name.endswith(b"/") else "reg"  # legacy: trailing slash marks a directory
        data_size = 0 if kind in _HEADER_ONLY else size
        if data_size < 0:
            raise TarFormatError(f"tar entry at offset {offset} has a negative size ({size})")
        if records is not None and _is_pax_sparse(records):
            raise UnsupportedLayerError(
                f"tar entry {_text(name)!r} at offset {offset} is a GNU sparse file (PAX format), "
                "which the ztoc format cannot describe"
            )

        if nanos:
            mod_time = format_mod_time(mtime, nanos)
        else:
            times = self._times  # layers reuse a handful of mtimes: format each once
            cached = times.get(mtime)
            if cached is None:
                if len(times) >= _TIME_CACHE_LIMIT:
                    times.clear()
                cached = times[mtime] = format_mod_time(mtime)
            mod_time = cached
        self._entries.append(
            FileMetadata(
                name.decode("utf-8", "surrogateescape"),  # _text, inlined: once per entry
                kind,
                end,
                size,
                linkname.decode("utf-8", "surrogateescape"),
                mode,
                uid & 0xFFFFFFFF,
                gid & 0xFFFFFFFF,
                uname,
                gname,
                mod_time,
                devmajor,
                devminor,
                xattrs,
            )
        )
        self._data_end = end + data_size
        return data_size + (-data_size % BLOCK)

    def _finish_record(self, data: bytes) -> int:
        """Apply a complete extension record to the next entry; returns its padding."""
        assert self._record is not None
        typeflag, offset, padding = self._record
        self._record = None
        self._want = _WANT_HEADER
        self._need = BLOCK
        if typeflag == b"x":
            self._pax = _parse_pax_records(data, offset)  # a later 'x' replaces an earlier one
        elif typeflag == b"L":
            self._long_name = _cstring(data)
        else:
            self._long_link = _cstring(data)
        return padding


# -- replays for the native parser (socikit/ztoc/csrc/tar.c) ----------------------------------------
#
# The native parser follows this module's rules. When it refuses a unit (a header block or an
# extension record), it hands over that unit and the extensions pending for the next entry, and
# the unit is replayed here: the exception, message included, is this parser's own.


def replay_failure(
    want: int,
    end: int,
    unit: bytes,
    pax: tuple[bytes, int] | None,
    long_name: bytes,
    long_link: bytes,
    record: tuple[bytes, int, int],
) -> NoReturn:
    """Raise what this parser raises for `unit` ending at stream position `end`, with `want` what
    the parser was reading, `pax` the pending PAX record (raw bytes, header offset), the pending
    GNU long name and link, and `record` the pending extension's (type flag, offset, padding)."""
    builder = TocBuilder()
    builder._pos = end - len(unit)
    if pax is not None:
        builder._pax = _parse_pax_records(*pax)
    builder._long_name = long_name
    builder._long_link = long_link
    builder._want = want
    if want == _WANT_RECORD:
        builder._record = record
        builder._need = len(unit)
    builder._process(unit, 0, end)
    raise AssertionError(  # the two parsers disagree: a bug, never a property of the input
        f"the native tar parser refused the unit ending at byte {end}, which the Python parser accepts"
    )


def end_of_archive(position: int, data_end: int, want: int, buffered: bytes) -> int:
    """`uncompressed_archive_size` for a stream that stopped at `position` (its archive not ended
    by two zero blocks), or the early-end error this parser raises there."""
    builder = TocBuilder()
    builder._pos = position
    builder._data_end = data_end
    builder._want = want
    builder._buf = bytearray(buffered)
    return builder.finish().uncompressed_archive_size


def build_toc(stream: BinaryIO, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> TocResult:
    """The TOC of the uncompressed tar read from `stream` (read in `chunk_size`-byte pieces)."""
    builder = TocBuilder()
    while chunk := stream.read(chunk_size):
        if not builder.feed(chunk):
            break
    return builder.finish()
