"""The Python face of the native engine (`socikit.ztoc._engine`, sources in `csrc/`).

`NativeToc` is a built TOC as the builder keeps it: one fixed-size C record per entry plus its
bytes (about 100 bytes and the names per file instead of 14 Python objects), read as a sequence
of `FileMetadata` made on access. `dumps` writes it without making those objects at all.

`NativeTocBuilder` is the native tar parser on its own with `toc.TocBuilder`'s interface; the
differential tests run both over the same bytes. Wherever the native parser refuses a unit, the
unit is replayed through the Python parser (`toc.replay_failure`), which raises its own error.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, overload

from socikit.ztoc import _engine
from socikit.ztoc.model import FileMetadata
from socikit.ztoc.toc import TocResult, end_of_archive, replay_failure

_engine.set_entry_type(FileMetadata)

__all__ = ["NativeToc", "NativeTocBuilder", "raise_tar_failure", "tar_end"]


class NativeToc(Sequence[FileMetadata]):
    """A TOC held by the native store; entries are made as `FileMetadata` when read. Equal to any
    sequence of the same entries (a decoded ztoc's tuple, say)."""

    __slots__ = ("store",)

    def __init__(self, store: _engine.TocStore) -> None:
        self.store = store

    def __len__(self) -> int:
        return len(self.store)

    @overload
    def __getitem__(self, index: int) -> FileMetadata: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[FileMetadata, ...]: ...

    def __getitem__(self, index: int | slice) -> FileMetadata | tuple[FileMetadata, ...]:
        if isinstance(index, slice):
            return tuple(self.store[i] for i in range(*index.indices(len(self.store))))
        if index < 0:
            index += len(self.store)
        return self.store[index]

    def __iter__(self) -> Iterator[FileMetadata]:
        store = self.store
        return (store[i] for i in range(len(store)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes, bytearray)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"NativeToc({len(self)} entries)"

    def __reduce__(self) -> tuple[Any, ...]:
        return tuple, (tuple(self),)


def raise_tar_failure(builder: _engine.Builder) -> None:
    """Raise the Python parser's error for the unit the native parser refused."""
    want, end, unit, pax, pax_offset, long_name, long_link, record_type, record_offset, padding = (
        builder.tar_failure()
    )
    replay_failure(
        want, end, unit, None if pax is None else (pax, pax_offset), long_name, long_link,
        (record_type, record_offset, padding),
    )  # fmt: skip


def tar_end(builder: _engine.Builder) -> int:
    """`uncompressed_archive_size` of the tar the builder was fed, or the early-end error."""
    ended, position, data_end, want, buffered, _skip = builder.tar_state()
    if ended:
        return position
    return end_of_archive(position, data_end, want, buffered)


class NativeTocBuilder:
    """`toc.TocBuilder`'s interface over the native parser: `feed` the tar stream's bytes in
    order, then `finish`; the same entries and the same errors."""

    def __init__(self) -> None:
        self._builder = _engine.Builder(gzip=False, span_size=0, hashing=False)

    def feed(self, data: bytes | bytearray | memoryview) -> bool:
        """Returns False once the end of the archive was reached; later feeds are ignored."""
        if self._builder.feed(data) == _engine.FEED_TAR_FAILED:
            raise_tar_failure(self._builder)
        return not self._builder.toc_done

    def finish(self) -> TocResult:
        end = tar_end(self._builder)
        store, *_ = self._builder.finish()
        return TocResult(NativeToc(store), end)
