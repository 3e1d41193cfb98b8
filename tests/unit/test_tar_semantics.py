"""The TOC parser against Go archive/tar semantics on tars made here (every format Python's
tarfile writes) and on hostile or malformed input."""

from __future__ import annotations

import io
import tarfile

import pytest

from socikit.errors import TarFormatError, UnsupportedLayerError
from socikit.ztoc.toc import TocBuilder, build_toc, format_mod_time
from tests.vectors import CONFORMANCE


def _tar(entries, fmt=tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _info(name, *, type_=tarfile.REGTYPE, size=0, **kw) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = type_
    info.size = size
    info.mtime = kw.pop("mtime", 1700000000)
    for key, value in kw.items():
        setattr(info, key, value)
    return info


def _offsets(raw: bytes) -> dict[str, int]:
    """name -> data offset as Python's tarfile sees it (an independent reader)."""
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        return {m.name: m.offset_data for m in tar.getmembers()}


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_formats_long_names_links_devices(fmt) -> None:
    long_dir = "d/" + "x" * 90 + "/" + "y" * 60
    entries = [
        (_info("d/", type_=tarfile.DIRTYPE, mode=0o755), None),
        (_info(long_dir + "/file.txt", size=5, mode=0o4755, uid=1000, gid=100, uname="u", gname="g"), b"hello"),
        (_info("d/link", type_=tarfile.SYMTYPE, linkname="../" + "t" * 99), None),
        (_info("d/hard", type_=tarfile.LNKTYPE, linkname=long_dir + "/file.txt"), None),
        (_info("d/null", type_=tarfile.CHRTYPE, devmajor=1, devminor=3), None),
        (_info("d/fifo", type_=tarfile.FIFOTYPE), None),
    ]
    if fmt == tarfile.USTAR_FORMAT:
        entries = [e for e in entries if len(e[0].linkname) <= 100]
    raw = _tar(entries, fmt)
    result = build_toc(io.BytesIO(raw))
    offsets = _offsets(raw)
    by_name = {e.name: e for e in result.entries}
    assert "d/" in by_name  # Go keeps a directory's trailing slash (Python's reader drops it)
    assert {n.rstrip("/") for n in by_name} == set(offsets)
    for name, entry in by_name.items():
        assert entry.uncompressed_offset == offsets[name.rstrip("/")], name
    f = by_name[long_dir + "/file.txt"]
    assert (f.type, f.uncompressed_size, f.mode, f.uid, f.gid, f.uname, f.gname) == (
        "reg",
        5,
        0o4755,
        1000,
        100,
        "u",
        "g",
    )
    assert by_name["d/null"].devmajor == 1 and by_name["d/null"].devminor == 3
    if fmt != tarfile.USTAR_FORMAT:  # ustar cannot hold a link target over 100 bytes
        assert by_name["d/hard"].type == "hardlink" and by_name["d/hard"].linkname == long_dir + "/file.txt"
    last = max(result.entries, key=lambda e: e.uncompressed_offset)
    data_end = last.uncompressed_offset + (last.uncompressed_size if last.type == "reg" else 0)
    assert result.uncompressed_archive_size == -(-data_end // 512) * 512 + 1024


def test_end_of_archive_rules() -> None:
    raw = _tar([(_info("a", size=3), b"abc")], tarfile.USTAR_FORMAT)
    # Python pads to a 10240-byte record; Go stops right after the two zero blocks.
    assert build_toc(io.BytesIO(raw)).uncompressed_archive_size == 512 + 512 + 1024
    # A stream that ends at a header boundary (no end blocks at all) is accepted, as by Go.
    assert build_toc(io.BytesIO(raw[:1024])).uncompressed_archive_size == 1024
    # Data complete but its padding missing entirely: still accepted (Go sees io.EOF there).
    assert build_toc(io.BytesIO(raw[: 512 + 3])).entries[0].uncompressed_size == 3
    # Ending inside the padding is io.EOF for Go's tryReadFull too: a normal end of the archive.
    assert build_toc(io.BytesIO(raw[:700])).uncompressed_archive_size == 700
    with pytest.raises(TarFormatError):
        build_toc(io.BytesIO(raw[:300]))  # inside a header
    with pytest.raises(TarFormatError):
        build_toc(io.BytesIO(raw[:512] + b"ab"))  # inside data


def test_pax_records_become_sorted_xattrs_with_binary_values() -> None:
    info = _info("f", size=1)
    info.pax_headers = {"SCHILY.xattr.user.bin": "\udcff\x00x", "comment": "hi", "mtime": "1700000000.25"}
    raw = _tar([(info, b"z")])
    entry = build_toc(io.BytesIO(raw)).entries[0]
    keys = [k for k, _ in entry.xattrs]
    assert keys == sorted(keys)
    assert dict(entry.xattrs)[b"comment"] == b"hi"
    assert entry.mod_time == "2023-11-14T22:13:20.25Z"


def test_mod_time_formatting() -> None:
    assert format_mod_time(0) == "1970-01-01T00:00:00Z"
    assert format_mod_time(-1) == "1969-12-31T23:59:59Z"
    assert format_mod_time(1700000000, 500000000) == "2023-11-14T22:13:20.5Z"
    assert format_mod_time(1700000000, 123) == "2023-11-14T22:13:20.000000123Z"
    assert format_mod_time(-62135596800) == "0001-01-01T00:00:00Z"
    assert format_mod_time(253402300800) == ""  # year 10000: Go's MarshalText fails, the reference stores ""


def test_base256_numbers() -> None:
    info = _info("big", size=0, uid=3_000_000, gid=2_097_152)
    raw = _tar([(info, b"")], tarfile.GNU_FORMAT)
    entry = build_toc(io.BytesIO(raw)).entries[0]
    assert entry.uid == 3_000_000 and entry.gid == 2_097_152


def test_hostile_paths_are_recorded_verbatim() -> None:
    """The TOC describes the tar; it never touches the filesystem, so '..' and absolute names are
    data (the snapshotter cleans them when it builds its tree)."""
    raw = _tar([(_info("../../etc/passwd", size=1), b"x"), (_info("/abs", size=0), b"")], tarfile.PAX_FORMAT)
    names = [e.name for e in build_toc(io.BytesIO(raw)).entries]
    assert names == ["../../etc/passwd", "/abs"]


def test_global_pax_header_is_unsupported_with_a_reason() -> None:
    with pytest.raises(UnsupportedLayerError, match="global PAX header"):
        build_toc(io.BytesIO(_global_pax()))


def test_bad_input_vector_global_pax_header_layer() -> None:
    """The shared bad-input case: the reference fails the whole build; we name the reason."""
    import gzip
    import json

    case = CONFORMANCE / "bad-inputs" / "pax-global-header" / "input"
    index = json.loads((case / "index.json").read_text())
    manifest = json.loads((case / "blobs" / "sha256" / index["manifests"][0]["digest"][7:]).read_text())
    blobs = [case / "blobs" / "sha256" / layer["digest"][7:] for layer in manifest["layers"]]
    reasons = []
    for blob in blobs:
        try:
            build_toc(io.BytesIO(gzip.decompress(blob.read_bytes())))
        except UnsupportedLayerError as exc:
            reasons.append(str(exc))
    assert len(reasons) == 1 and "global PAX header" in reasons[0]


def _global_pax() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, pax_headers={"comment": "global"}) as tar:
        tar.addfile(_info("f", size=1), io.BytesIO(b"f"))
    return buf.getvalue()


def test_gnu_sparse_is_unsupported() -> None:
    block = bytearray(_tar([(_info("sparse", size=0), b"")], tarfile.GNU_FORMAT)[:512])
    block[156:157] = b"S"
    block[148:156] = b" " * 8
    block[148:155] = f"{sum(block):06o}\0".encode()
    with pytest.raises(UnsupportedLayerError, match="sparse"):
        build_toc(io.BytesIO(bytes(block) + bytes(1024)))


def test_bad_checksum_and_bad_octal() -> None:
    raw = bytearray(_tar([(_info("a", size=1), b"a")], tarfile.USTAR_FORMAT))
    raw[0] ^= 1
    with pytest.raises(TarFormatError, match="checksum"):
        build_toc(io.BytesIO(bytes(raw)))


def test_feeding_in_any_chunk_size_gives_the_same_toc() -> None:
    raw = _tar([(_info(f"f{i}", size=i * 100), b"q" * (i * 100)) for i in range(30)])
    reference = build_toc(io.BytesIO(raw))
    for chunk in (1, 7, 511, 513, 4096):
        builder = TocBuilder()
        for i in range(0, len(raw), chunk):
            if not builder.feed(raw[i : i + chunk]):
                break
        assert builder.finish() == reference
