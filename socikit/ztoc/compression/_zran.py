"""The one native seam: zlib-ng's native inflate API through ctypes.

Python's zlib, isal and the zlib-ng module's Python API do not expose `inflate(Z_BLOCK)`,
`strm.data_type` or `inflatePrime`, which zran-style checkpoints need. The zlib-ng wheel's
extension module exports the native `zng_*` symbols, so we call them with ctypes; the system libz
(`inflateInit2_`, same struct layout on LP64) is the fallback. ctypes drops the GIL for the
duration of every foreign call, so layers inflate in parallel on threads.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable
from dataclasses import dataclass

from socikit.ztoc.compression.zcodes import Z_OK, inflate_error_text

_Fn = Callable[..., int]  # a bound foreign function returning a C int


class ZStream(ctypes.Structure):
    """`zng_stream` (zlib-ng 2.x native API); identical in layout to zlib's `z_stream` on LP64."""

    _fields_ = [
        ("next_in", ctypes.c_void_p),
        ("avail_in", ctypes.c_uint32),
        ("total_in", ctypes.c_size_t),
        ("next_out", ctypes.c_void_p),
        ("avail_out", ctypes.c_uint32),
        ("total_out", ctypes.c_size_t),
        ("msg", ctypes.c_char_p),
        ("state", ctypes.c_void_p),
        ("zalloc", ctypes.c_void_p),
        ("zfree", ctypes.c_void_p),
        ("opaque", ctypes.c_void_p),
        ("data_type", ctypes.c_int),
        ("adler", ctypes.c_ulong),
        ("reserved", ctypes.c_ulong),
    ]


@dataclass(frozen=True)
class InflateLib:
    """The resolved inflate entry points of one library."""

    name: str
    inflate: _Fn
    inflate_end: _Fn
    inflate_reset2: _Fn
    inflate_prime: _Fn
    inflate_set_dictionary: _Fn
    _init2: _Fn
    _zlib_version: bytes | None

    def address(self, entry_point: str) -> int:
        """The C address of an entry point (e.g. "inflate"), for the native builder loop in `_engine`."""
        address = ctypes.cast(getattr(self, entry_point), ctypes.c_void_p).value
        assert address is not None
        return address

    def init2(self, strm: ZStream, window_bits: int) -> int:
        if self._zlib_version is None:
            return int(self._init2(ctypes.byref(strm), window_bits))
        return int(self._init2(ctypes.byref(strm), window_bits, self._zlib_version, ctypes.sizeof(ZStream)))


def _bind(lib: ctypes.CDLL, prefix: str, name: str, zlib_version: bytes | None) -> InflateLib:
    def fn(symbol: str, *argtypes: object) -> _Fn:
        f = getattr(lib, prefix + symbol)
        f.argtypes = list(argtypes)
        f.restype = ctypes.c_int
        return f  # type: ignore[no-any-return]

    p = ctypes.POINTER(ZStream)
    if zlib_version is None:
        init2 = fn("inflateInit2", p, ctypes.c_int)
    else:
        init2 = fn("inflateInit2_", p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int)
    return InflateLib(
        name=name,
        inflate=fn("inflate", p, ctypes.c_int),
        inflate_end=fn("inflateEnd", p),
        inflate_reset2=fn("inflateReset2", p, ctypes.c_int),
        inflate_prime=fn("inflatePrime", p, ctypes.c_int, ctypes.c_int),
        inflate_set_dictionary=fn("inflateSetDictionary", p, ctypes.c_void_p, ctypes.c_uint),
        _init2=init2,
        _zlib_version=zlib_version,
    )


def _load_zlib_ng() -> InflateLib | None:
    try:
        from zlib_ng import zlib_ng as module
    except ImportError:
        return None
    lib = ctypes.CDLL(module.__file__)
    if not hasattr(lib, "zng_inflateInit2"):
        return None
    version_fn = lib.zlibng_version
    version_fn.restype = ctypes.c_char_p
    return _bind(lib, "zng_", f"zlib-ng {version_fn().decode()}", None)


def _load_system_zlib() -> InflateLib | None:
    import ctypes.util  # only for this fallback: it imports much of the stdlib

    path = ctypes.util.find_library("z")
    if path is None:
        return None
    lib = ctypes.CDLL(path)
    version_fn = lib.zlibVersion
    version_fn.restype = ctypes.c_char_p
    version = version_fn()
    return _bind(lib, "", f"zlib {version.decode()}", version)


@functools.cache
def inflate_lib() -> InflateLib:
    """zlib-ng's native inflate if the wheel provides it, else the system libz."""
    lib = _load_zlib_ng() or _load_system_zlib()
    if lib is None:
        raise RuntimeError("neither zlib-ng (pip package zlib-ng) nor a system libz could be loaded")
    return lib


def error_text(ret: int, strm: ZStream) -> str:
    """zlib's message for a failed call (e.g. 'invalid block type', 'incorrect data check')."""
    return inflate_error_text(ret, strm.msg)


class Inflater:
    """An initialised inflate stream that frees itself (use as a context manager)."""

    def __init__(self, window_bits: int) -> None:
        self.lib = inflate_lib()
        self.strm = ZStream()
        self.ref = ctypes.byref(self.strm)
        ret = self.lib.init2(self.strm, window_bits)
        if ret != Z_OK:
            raise MemoryError(f"inflateInit2 failed: {ret}")
        self._open = True

    def close(self) -> None:
        if self._open:
            self.lib.inflate_end(self.ref)
            self._open = False

    def __enter__(self) -> Inflater:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()
