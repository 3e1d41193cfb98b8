#!/usr/bin/env python3
"""Make the socikit-made conformance vectors in conformance/vectors-extra/ (see
conformance/vectors/README.md): inputs from fixed seeds, outputs written by socikit itself.

Unlike conformance/vectors/, these were not produced by the reference `soci` CLI. The
`xattr-optimization` case follows the fact sheet's rule for `--optimizations xattr` (§3, §5.1) and
its tests check every annotation against that rule with an independent tar reader; `expected/`
holds the form soci v0.11.1 writes (no span-size annotation), `expected-current/` the current one.
The `prefetch` case records socikit's prefetch artifacts (reference v0.13+ feature).

    PYTHONPATH=. python3 scripts/make_extra_vectors.py [--only NAME]   # rewrites the case directories
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import random
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from socikit.content.layout import LayoutSource  # noqa: E402
from socikit.oci import gojson  # noqa: E402
from socikit.oci import mediatypes as mt  # noqa: E402
from socikit.oci.descriptor import Descriptor  # noqa: E402
from socikit.oci.manifest import ImageConfig, ImageIndex, ImageManifest  # noqa: E402
from socikit.pipeline.convert import ConvertOptions  # noqa: E402
from socikit.pipeline.run import run_convert  # noqa: E402
from socikit.soci.convert import BuiltSociIndex, convert_to_v2  # noqa: E402
from socikit.soci.index import build_soci_index, parse_soci_index  # noqa: E402

EXTRA = REPO / "conformance" / "vectors-extra"
MTIME = 1_700_000_000
SPAN = 65536
TOOL = mt.REFERENCE_BUILD_TOOL_ID
MADE_BY = "socikit (scripts/make_extra_vectors.py) from the fact sheet's rules, not the reference soci CLI"


def _content(rng: random.Random, size: int) -> bytes:
    words = b"span checkpoint layer xattr whiteout opaque prefetch ztoc index manifest".split()
    out = bytearray()
    while len(out) < size:
        if rng.random() < 0.7:
            out += b" ".join(rng.choice(words) for _ in range(rng.randint(4, 40))) + b"\n"
        else:
            out += rng.randbytes(rng.randint(16, 1500))
    return bytes(out[:size])


class _Tar:
    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)

    def _info(self, name: str, kind: bytes, mode: int, pax: dict[str, str] | None = None) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime = kind, mode, MTIME
        info.uname = info.gname = "root"
        if pax:
            info.pax_headers = dict(pax)
        return info

    def dir(self, name: str, pax: dict[str, str] | None = None) -> None:
        self.tar.addfile(self._info(name, tarfile.DIRTYPE, 0o755, pax))

    def file(self, name: str, data: bytes, pax: dict[str, str] | None = None, mode: int = 0o644) -> None:
        info = self._info(name, tarfile.REGTYPE, mode, pax)
        info.size = len(data)
        self.tar.addfile(info, io.BytesIO(data))

    def link(self, name: str, target: str, *, hard: bool) -> None:
        info = self._info(name, tarfile.LNKTYPE if hard else tarfile.SYMTYPE, 0o777)
        info.linkname = target
        self.tar.addfile(info)

    def finish(self) -> bytes:
        self.tar.close()
        return self.buf.getvalue()


def _blob(layout: Path, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": "sha256:" + digest, "size": len(data)}


def write_input(layout: Path, tars: list[bytes]) -> None:
    """A linux/amd64 OCI image of gzip layers (gzip level 6, no name, mtime 0), tagged latest."""
    layers, diff_ids = [], []
    for tar in tars:
        blob = gzip.compress(tar, compresslevel=6, mtime=0)
        layers.append({"mediaType": mt.MEDIA_TYPE_OCI_LAYER_GZIP, **_blob(layout, blob)})
        diff_ids.append("sha256:" + hashlib.sha256(tar).hexdigest())
    config = gojson.dumps({"architecture": "amd64", "os": "linux", "config": {},
                           "rootfs": {"type": "layers", "diff_ids": diff_ids}})
    manifest = gojson.dumps({"schemaVersion": 2, "mediaType": mt.MEDIA_TYPE_OCI_MANIFEST,
                             "config": {"mediaType": mt.MEDIA_TYPE_OCI_CONFIG, **_blob(layout, config)},
                             "layers": layers})
    entry = {"mediaType": mt.MEDIA_TYPE_OCI_MANIFEST, **_blob(layout, manifest),
             "annotations": {mt.ANNOTATION_REF_NAME: "latest"}}
    (layout / "oci-layout").write_bytes(b'{"imageLayoutVersion":"1.0.0"}')
    (layout / "index.json").write_bytes(gojson.dumps({"schemaVersion": 2, "mediaType": mt.MEDIA_TYPE_OCI_INDEX,
                                                      "manifests": [entry]}))


def xattr_layers() -> list[bytes]:
    rng = random.Random(15)
    with_xattrs = _Tar()
    with_xattrs.dir("usr/")
    with_xattrs.dir("usr/bin/", pax={"SCHILY.xattr.user.origin": "base"})
    with_xattrs.file("usr/bin/tool", _content(rng, 150_000),
                     pax={"SCHILY.xattr.security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00"}, mode=0o755)
    with_xattrs.file("usr/share/doc.txt", _content(rng, 40_000))
    without = _Tar()  # PAX records, but none of them an xattr; a plain whiteout is not an opaque dir
    long_name = "opt/" + "very-long-directory-name/" * 5 + "file-with-a-long-name.dat"
    without.file(long_name, _content(rng, 120_000))
    without.file("opt/precise-time.txt", _content(rng, 30_000), pax={"mtime": f"{MTIME}.25"})
    without.file("usr/share/.wh.doc.txt", b"")
    without.link("opt/hard", long_name, hard=True)
    without.link("opt/soft", "precise-time.txt", hard=False)
    opaque = _Tar()
    opaque.dir("var/")
    opaque.dir("var/cache/")
    opaque.file("var/cache/.wh..wh..opq", b"")
    opaque.file("var/cache/data.bin", _content(rng, 100_000))
    return [with_xattrs.finish(), without.finish(), opaque.finish()]


def prefetch_layers() -> list[bytes]:
    rng = random.Random(13)
    base = _Tar()
    base.file("app/big.bin", _content(rng, 300_000))
    base.file("lib/a.so", _content(rng, 100_000))
    base.file("etc/conf", _content(rng, 200))
    base.file("data/old.txt", _content(rng, 90_000))
    top = _Tar()
    top.file("app/big.bin", _content(rng, 120_000))  # overrides the base layer's copy
    top.file("app/extra.bin", _content(rng, 150_000))
    top.link("app/link", "app/extra.bin", hard=True)
    top.file("data/.wh.old.txt", b"")
    return [base.finish(), top.finish()]


CASES: dict[str, dict[str, Any]] = {
    "xattr-optimization": {
        "layers": xattr_layers,
        "params": {"span_size": SPAN, "min_layer_size": 0, "platforms": ["linux/amd64"], "build_tool_id": TOOL,
                   "optimizations": ["xattr"]},
    },
    "prefetch": {
        "layers": prefetch_layers,
        "params": {"span_size": SPAN, "min_layer_size": 0, "platforms": ["linux/amd64"], "build_tool_id": TOOL,
                   "prefetch_files": ["/app/big.bin", "lib/a.so", "/etc/conf", "app/link", "/data/old.txt",
                                      "./lib/../etc/conf"]},
    },
}


def _options(params: dict[str, Any], version: str) -> ConvertOptions:
    return ConvertOptions(index_version=version, platforms=tuple(params["platforms"]),
                          span_size=params["span_size"], min_layer_size=params["min_layer_size"],
                          build_tool_identifier=params["build_tool_id"], jobs=1,
                          optimizations=tuple(params.get("optimizations", ())),
                          prefetch_paths=tuple(params.get("prefetch_files", ())))


def _blob_bytes(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()


def _name(prefix: str, data: bytes, suffix: str) -> str:
    return f"{prefix}-{hashlib.sha256(data).hexdigest()}{suffix}"


def write_expected_current(case: Path, params: dict[str, Any], work: Path) -> dict[str, bytes]:
    """socikit's v2 and v1 output for the case; returns the files written, by name."""
    files: dict[str, bytes] = {}
    v2_out, v1_out = work / "v2", work / "v1"
    run_convert(f"oci:{case / 'input'}:latest", f"oci:{v2_out}:latest", _options(params, "v2"))
    run_convert(f"oci:{case / 'input'}:latest", f"oci:{v1_out}:latest", _options(params, "v1"))
    v2 = LayoutSource(v2_out, tag="latest")
    root = v2.resolve()
    converted = v2.read_blob(root)
    files["converted-index.json"] = converted
    for entry in ImageIndex.from_json(converted).entries:
        data = v2.read_blob(entry)
        if entry.artifact_type == mt.ARTIFACT_TYPE_SOCI_INDEX_V2:
            files[_name("soci-index-v2", data, ".json")] = data
            for blob in parse_soci_index(data).manifest.layer_list:
                raw = _blob_bytes(v2_out, blob.digest)
                if blob.media_type == mt.MEDIA_TYPE_ZTOC:
                    files[_name("ztoc", raw, ".bin")] = raw
                else:
                    files[_name("prefetch", raw, ".json")] = raw
        else:
            files[_name("manifest", data, ".json")] = data
    for entry in LayoutSource(v1_out, tag="latest").entries():
        if entry.artifact_type == mt.ARTIFACT_TYPE_SOCI_INDEX_V1:
            data = _blob_bytes(v1_out, entry.digest)
            files[_name("soci-index-v1", data, ".json")] = data
    out = case / "expected-current"
    out.mkdir()
    for name, data in files.items():
        (out / name).write_bytes(data)
    return files


def _without_span_size(data: bytes, version: str, subject: Descriptor | None) -> tuple[bytes, Descriptor]:
    """A SOCI index as soci v0.11.1 writes it: the same, minus the span-size annotation (v0.12+)."""
    index = parse_soci_index(data)
    layers = [d.with_changes(annotations={k: v for k, v in d.annotations.items() if k != mt.ANNOTATION_SPAN_SIZE})
              for d in index.manifest.layer_list]
    return build_soci_index(layers, version=version, subject=subject, build_tool_identifier=index.build_tool_identifier)


def write_expected_v0111(case: Path, params: dict[str, Any], current: dict[str, bytes]) -> None:
    """expected/: the v0.11.1 form (no span-size annotation) and a summary in the shape of the
    reference vectors' summary.json."""
    out = case / "expected"
    out.mkdir()
    source = LayoutSource(case / "input", tag="latest")
    root = source.resolve()
    root_bytes = source.read_blob(root)
    manifest = ImageManifest.from_json(root_bytes)
    platform = ImageConfig.from_json(source.read_blob(manifest.config)).platform()
    subject = Descriptor(root.media_type, root.digest, root.size)
    (v1_name,) = [n for n in current if n.startswith("soci-index-v1-")]
    (v2_name,) = [n for n in current if n.startswith("soci-index-v2-")]
    v1_data, v1_desc = _without_span_size(current[v1_name], "v1", subject)
    v2_data, v2_desc = _without_span_size(current[v2_name], "v2", None)
    converted = convert_to_v2(root=root, root_bytes=root_bytes, root_platform=platform,
                              manifests={root.digest: root_bytes},
                              soci_indexes=[BuiltSociIndex(root.digest, platform, v2_desc)])
    (out / "soci-index-v1.json").write_bytes(v1_data)
    (out / "soci-index-v2.json").write_bytes(v2_data)
    (out / "converted-index.json").write_bytes(converted.index_bytes)
    for desc, data in converted.manifests:
        (out / f"manifest-{desc.digest.split(':', 1)[1]}.json").write_bytes(data)
    ztocs = []
    layers_of_index = []
    for ztoc in parse_soci_index(v1_data).ztocs:
        raw = current[f"ztoc-{ztoc.digest.split(':', 1)[1]}.bin"]
        (out / f"ztoc-{ztoc.digest.split(':', 1)[1]}.bin").write_bytes(raw)
        layer = next(layer for layer in manifest.layer_list
                     if layer.digest == ztoc.annotations[mt.ANNOTATION_IMAGE_LAYER_DIGEST])
        layers_of_index.append({"layer_digest": layer.digest, "layer_size": layer.size,
                                "layer_mediaType": layer.media_type, "ztoc": ztoc.digest})
        ztocs.append({"file": f"ztoc-{ztoc.digest.split(':', 1)[1]}.bin", "digest": ztoc.digest, "size": ztoc.size,
                      "layer_digest": layer.digest, "layer_mediaType": layer.media_type,
                      "descriptor_annotations": dict(ztoc.annotations), "span_size": params["span_size"]})
    summary = {
        "made_by": MADE_BY,
        "params": params,
        "soci_index_v1": [{"file": "soci-index-v1.json", "digest": v1_desc.digest, "size": v1_desc.size,
                           "platform": platform.to_json(), "subject": root.digest, "layers": layers_of_index}],
        "soci_index_v2": [{"file": "soci-index-v2.json", "digest": v2_desc.digest, "size": v2_desc.size,
                           "platform": platform.to_json(), "image_manifest": converted.manifests[0][0].digest,
                           "layers": layers_of_index}],
        "converted_index": {"file": "converted-index.json", "digest": converted.index.digest,
                            "size": converted.index.size},
        "ztocs": ztocs,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")


def make_case(name: str) -> None:
    spec = CASES[name]
    case = EXTRA / name
    if case.exists():
        shutil.rmtree(case)
    (case / "input").mkdir(parents=True)
    params = spec["params"]
    (case / "params.json").write_text(json.dumps(params, indent=1) + "\n")
    write_input(case / "input", spec["layers"]())
    with tempfile.TemporaryDirectory() as work:
        current = write_expected_current(case, params, Path(work))
    if "optimizations" in params:
        write_expected_v0111(case, params, current)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=sorted(CASES), action="append")
    args = parser.parse_args()
    for name in args.only or sorted(CASES):
        make_case(name)
        print(f"wrote {EXTRA / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
