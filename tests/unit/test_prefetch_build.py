"""Building prefetch artifacts from requested paths (socikit.soci.prefetch, fact sheet §5.4): the
topmost indexed layer holding a file gets the spans of exactly its data, whiteouts and opaque
directories above end the search, paths are cleaned the reference's way, and the JSON file is the
reference's plain array of paths."""

from __future__ import annotations

import gzip
import io
import tarfile

import pytest

from socikit.errors import FormatError
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor, descriptor_for
from socikit.soci.index import parse_soci_index, prefetch_descriptor
from socikit.soci.prefetch import (
    PrefetchSpan,
    clean_prefetch_path,
    describe_prefetch,
    describe_spans,
    dumps_prefetch,
    loads_prefetch,
    loads_prefetch_files_json,
    plan_prefetch,
    prefetch_artifacts,
    prefetch_path_list,
)
from socikit.ztoc.builder import build_ztoc
from socikit.ztoc.model import Ztoc
from socikit.ztoc.spans import SpanTable
from tests.images import TarBuilder
from tests.ztoc_trees import seeded_tar

SPAN = 16384


def _layer(tar: bytes, span: int = SPAN) -> tuple[Descriptor, Ztoc]:
    blob = gzip.compress(tar, mtime=0)
    desc = descriptor_for(blob, mt.MEDIA_TYPE_OCI_LAYER_GZIP)
    return desc, build_ztoc(io.BytesIO(blob), span_size=span, build_tool_identifier="t").ztoc


def _data_ranges(tar: bytes) -> dict[str, tuple[int, int]]:
    """name -> (data offset, size) of each regular file, as Python's tarfile reads the tar."""
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        return {m.name: (m.offset_data, m.size) for m in archive.getmembers() if m.isreg()}


def test_each_file_gets_exactly_the_spans_holding_its_data() -> None:
    """For every regular file: the span ids whose uncompressed bytes meet the file's data, worked
    out from the span table and tarfile's offsets (not from the TOC), are the artifact's range."""
    tar = seeded_tar(7, files=120, max_size=80_000)
    layer, ztoc = _layer(tar)
    spans = SpanTable(ztoc)
    assert spans.count > 20
    files = _data_ranges(tar)
    checked = 0
    for name, (offset, size) in files.items():
        plan = plan_prefetch([name], [(layer, ztoc)])
        if size == 0:
            assert layer.digest not in plan.spans and "empty file" in plan.not_prefetched[name]
            continue
        meeting = [
            i for i in range(spans.count)
            if spans.uncompressed_range(i)[0] < offset + size and offset < spans.uncompressed_range(i)[1]
        ]
        assert plan.spans[layer.digest] == [PrefetchSpan(meeting[0], meeting[-1])], name
        assert meeting == list(range(meeting[0], meeting[-1] + 1))
        checked += 1
    assert checked > 60


def test_a_file_ending_on_a_span_edge_does_not_take_the_next_span() -> None:
    """Uncompressed tar spans are fixed slices: a file whose data ends exactly where span 1
    starts is in span 0 only, one starting there is in span 1 only."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for name, data in (("first", b"x" * (SPAN - 512)), ("second", b"y" * 100)):
            info = tarfile.TarInfo(name)  # first: data [512, SPAN); second: header at SPAN
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    tar = buf.getvalue()
    layer = descriptor_for(tar, mt.MEDIA_TYPE_OCI_LAYER)
    ztoc = build_ztoc(io.BytesIO(tar), algorithm="uncompressed", span_size=SPAN, build_tool_identifier="t").ztoc
    assert _data_ranges(tar)["first"] == (512, SPAN - 512)
    assert plan_prefetch(["first"], [(layer, ztoc)]).spans[layer.digest] == [PrefetchSpan(0, 0)]
    assert plan_prefetch(["second"], [(layer, ztoc)]).spans[layer.digest] == [PrefetchSpan(1, 1)]


def _two_layers() -> list[tuple[Descriptor, Ztoc]]:
    base = TarBuilder()
    base.file("app/main.py", b"a" * 50_000)
    base.file("app/lib/util.py", b"b" * 40_000)
    base.file("etc/conf", b"c" * 30_000)
    base.file("opt/cache/blob", b"d" * 30_000)
    base.file("srv/data/x", b"e" * 30_000)
    base.file("keep/me", b"f" * 30_000)
    base.file("empty", b"")
    base.symlink("link-to-conf", "etc/conf")
    top = TarBuilder()
    top.file("app/main.py", b"A" * 20_000)  # overrides the base layer's copy
    top.hardlink("app/alias.py", "app/main.py")
    top.whiteout("etc/conf")
    top.opaque("opt/cache")
    top.file("srv", b"srv is a file now")  # a non-directory in place of a parent directory
    return [_layer(base.finish()), _layer(top.finish())]


def test_search_goes_from_the_top_layer_down_and_respects_whiteouts() -> None:
    (base, base_ztoc), (top, top_ztoc) = layers = _two_layers()
    plan = plan_prefetch(
        ["/app/main.py", "app/lib/util.py", "/etc/conf", "opt/cache/blob", "srv/data/x", "keep/me", "app/alias.py",
         "/missing", "empty", "link-to-conf", "app"],
        layers,
    )
    assert plan.found_in == {
        "app/main.py": top.digest, "app/lib/util.py": base.digest, "keep/me": base.digest,
        "app/alias.py": top.digest, "empty": base.digest, "link-to-conf": base.digest, "app": top.digest,
    }
    reasons = plan.not_prefetched
    assert "whiteout 'etc/.wh.conf'" in reasons["etc/conf"]
    assert "opaque directory 'opt/cache'" in reasons["opt/cache/blob"]
    assert "'srv' is not a directory" in reasons["srv/data/x"]
    assert reasons["missing"] == "not in any indexed layer"
    assert "empty file" in reasons["empty"] and "symlink" in reasons["link-to-conf"] and "dir" in reasons["app"]
    top_entry = {e.name: e for e in top_ztoc.toc}["app/main.py"]
    main_spans = SpanTable(top_ztoc).spans_covering(top_entry.uncompressed_offset, top_entry.uncompressed_size)
    # The hard link prefetches its target's data: the same spans as app/main.py in the top layer.
    assert plan.spans[top.digest] == [PrefetchSpan(main_spans[0], main_spans[-1])] * 2
    assert len(plan.spans[base.digest]) == 2
    artifacts = prefetch_artifacts(plan, [base, top])
    assert [d.annotations for d, _ in artifacts] == [
        {mt.ANNOTATION_IMAGE_LAYER_DIGEST: base.digest}, {mt.ANNOTATION_IMAGE_LAYER_DIGEST: top.digest},
    ]
    for desc, data in artifacts:
        assert desc.media_type == mt.MEDIA_TYPE_SOCI_PREFETCH
        assert desc == prefetch_descriptor(descriptor_for(data, "x").digest, len(data),
                                           layer_digest=desc.annotations[mt.ANNOTATION_IMAGE_LAYER_DIGEST])
        assert loads_prefetch(data) and dumps_prefetch(loads_prefetch(data)) == data


def test_an_unindexed_layer_is_invisible_and_a_file_only_there_is_reported() -> None:
    (base, base_ztoc), (top, _top_ztoc) = _two_layers()
    plan = plan_prefetch(["app/main.py", "etc/conf"], [(base, base_ztoc), (top, None)])
    assert plan.found_in == {"app/main.py": base.digest, "etc/conf": base.digest}
    assert prefetch_artifacts(plan, [base, top])[0][0].annotations[mt.ANNOTATION_IMAGE_LAYER_DIGEST] == base.digest
    nothing = plan_prefetch(["app/main.py"], [(base, None)])
    assert nothing.spans == {} and prefetch_artifacts(nothing, [base]) == []


@pytest.mark.parametrize(("given", "cleaned"), [
    ("/app/main.py", "app/main.py"),
    ("app/main.py", "app/main.py"),
    ("./app//lib/../main.py", "app/main.py"),
    ("  /etc/conf \t", "etc/conf"),
    ("/../../etc/conf", "etc/conf"),
])
def test_paths_are_cleaned_like_the_reference(given: str, cleaned: str) -> None:
    assert clean_prefetch_path(given) == cleaned


@pytest.mark.parametrize("root", ["/", ".", "/..", "//"])
def test_the_root_is_not_a_file(root: str) -> None:
    with pytest.raises(FormatError, match="root directory"):
        clean_prefetch_path(root)


def test_the_json_file_is_a_plain_array_of_paths() -> None:
    assert loads_prefetch_files_json(b'["/app/a", "  ", " b ", ""]') == ["/app/a", "b"]
    assert prefetch_path_list(["x ", "", " "]) == ["x"]
    for bad in (b'{"layer": ["/a"]}', b'"/a"', b'["/a", 3]', b"[", b"\xff"):
        with pytest.raises(FormatError):
            loads_prefetch_files_json(bad)


def test_a_file_requested_twice_or_in_two_spellings_counts_once() -> None:
    layers = _two_layers()
    plan = plan_prefetch(["/app/main.py", "app/main.py", "./app/main.py"], layers)
    assert list(plan.found_in) == ["app/main.py"]
    assert len(plan.spans[layers[1][0].digest]) == 1


def test_descriptions_for_index_info() -> None:
    assert describe_spans([PrefetchSpan(0, 2), PrefetchSpan(5, 5), PrefetchSpan(3, 3)]) == "0-3, 5 (5 spans)"
    assert describe_spans([]) == "none (0 spans)"
    data = dumps_prefetch([PrefetchSpan(1, 1)])
    desc = prefetch_descriptor(descriptor_for(data, "x").digest, len(data), layer_digest="sha256:" + "a" * 64)
    assert describe_prefetch(desc, data) == f"prefetch {desc.digest} for layer sha256:{'a' * 64}: spans 1 (1 span)"
    assert "unreadable" in describe_prefetch(desc, b"{}")


def test_soci_index_lists_prefetch_artifacts_apart_from_ztocs() -> None:
    from socikit.soci.index import build_soci_index, ztoc_descriptor

    (layer, _ztoc), _ = _two_layers()
    ztoc = ztoc_descriptor("sha256:" + "1" * 64, 10, layer=layer, span_size=SPAN)
    prefetch = prefetch_descriptor("sha256:" + "2" * 64, 20, layer_digest=layer.digest)
    data, _desc = build_soci_index([ztoc, prefetch], version="v2", subject=None, build_tool_identifier="t")
    index = parse_soci_index(data)
    assert index.ztocs == (ztoc,) and index.prefetches == (prefetch,)
    assert index.prefetches_for_layer(layer.digest) == (prefetch,) and index.prefetches_for_layer("x") == ()
    assert index.dumps() == data
    # The reference's descriptor form: media type, digest, size, and only the layer-digest annotation.
    assert data.count(b'{"mediaType":"application/vnd.amazon.soci.prefetch.v1+json","digest":"sha256:2222') == 1
    assert b'"size":20,"annotations":{"com.amazon.soci.image-layer-digest":"' + layer.digest.encode() + b'"}}' in data
