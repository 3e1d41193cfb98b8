"""Checks of single SOCI artifacts, on raw bytes and decoded JSON (fact sheet §1, §5, §6).

Pure functions: they take what was read and return `CheckResult`s; `collect.py` does the reading
and `graph_checks.py` applies them to every artifact of an image.
They judge artifacts made by any producer, so they decode leniently and report precisely.
"""

from __future__ import annotations

import json
from typing import Any

from socikit.errors import SocikitError
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor, Platform
from socikit.oci.manifest import ImageIndex, ImageManifest
from socikit.oci.platform import matches
from socikit.validate.report import (
    ANNOTATIONS,
    GO_CANONICAL,
    MEDIA_TYPES,
    SCHEMA,
    ZTOC_DECODES,
    ZTOC_LAYER,
    ZTOC_SIZE,
    ZTOC_SPAN_SIZE,
    CheckResult,
)
from socikit.validate.schemas import schema_errors
from socikit.ztoc.compression.tar import TarZinfo
from socikit.ztoc.extract import zinfo_of
from socikit.ztoc.model import ALGORITHM_GZIP, ALGORITHM_UNCOMPRESSED, Ztoc
from socikit.ztoc.serialize import loads

SUPPORTED_COMPRESSIONS = {"gzip": ALGORITHM_GZIP, "uncompressed": ALGORITHM_UNCOMPRESSED}
_OPAQUE_WHITEOUT = ".wh..wh..opq"
_XATTR_PREFIX = b"SCHILY.xattr."


def short(digest: str) -> str:
    """`sha256:0123456789ab` — enough of a digest to tell artifacts apart in one line."""
    return digest[:19]


def decode_json(data: bytes) -> tuple[dict[str, Any] | None, str]:
    """The JSON object in `data` with its key order kept, or (None, why not)."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        return None, f"not valid JSON: {exc}"
    if not isinstance(obj, dict):
        return None, "not a JSON object"
    return obj, ""


def check_schema(schema: str, obj: dict[str, Any] | None, subject: str, *, why: str = "") -> CheckResult:
    """Schema validity; `obj` None means the bytes did not decode (`why`)."""
    if obj is None:
        return CheckResult(SCHEMA, False, why or "not a JSON object", subject)
    errors = schema_errors(schema, obj)
    if errors:
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        return CheckResult(SCHEMA, False, f"{schema}: {errors[0]}{more}", subject)
    return CheckResult(SCHEMA, True, f"valid {schema}", subject)


def go_reencode(obj: dict[str, Any], kind: str) -> bytes:
    """What Go writes for the decoded document: struct field order, omitempty, sorted map keys,
    unknown fields dropped, `<>&` escaped. `kind`: "index" (`ocispec.Index`), "manifest"
    (`ocispec.Manifest`) or "soci-index" (the snapshotter's `MarshalIndex`, which re-encodes a
    fetched SOCI index with schemaVersion 2 and the OCI manifest media type forced and without any
    top-level artifactType)."""
    if kind == "index":
        return ImageIndex.from_json(obj).dumps()
    manifest = ImageManifest.from_json(obj)
    if kind == "soci-index":
        manifest = manifest.with_changes(
            schema_version=2, media_type=mt.MEDIA_TYPE_OCI_MANIFEST, artifact_type=""
        )
    return manifest.dumps()


def first_difference(have: bytes, want: bytes) -> str:
    at = next((i for i in range(min(len(have), len(want))) if have[i] != want[i]), min(len(have), len(want)))
    lo = max(0, at - 20)
    return (
        f"byte {at}: has {have[lo : at + 20].decode('utf-8', 'replace')!r}, "
        f"Go writes {want[lo : at + 20].decode('utf-8', 'replace')!r}"
    )


def check_go_canonical(
    data: bytes, obj: dict[str, Any] | None, kind: str, subject: str, consequence: str
) -> CheckResult:
    """The bytes equal their Go re-encoding. `consequence` says what goes wrong if not."""
    if obj is None:
        return CheckResult(GO_CANONICAL, False, "cannot be re-encoded: not a JSON object", subject)
    try:
        canonical = go_reencode(obj, kind)
    except SocikitError as exc:
        return CheckResult(GO_CANONICAL, False, f"Go would not decode it: {exc}", subject)
    if canonical == data:
        return CheckResult(GO_CANONICAL, True, "bytes equal Go's re-encoding", subject)
    return CheckResult(
        GO_CANONICAL,
        False,
        f"differs from Go's re-encoding at {first_difference(data, canonical)}; {consequence}",
        subject,
    )


def platform_text(platform: Platform | None) -> str:
    return str(platform) if platform is not None else ""


def platforms_match(a: Platform | None, b: Platform | None) -> bool:
    """Same platform after containerd normalization (linux/arm64/v8 == linux/arm64)."""
    if a is None or b is None:
        return a is b
    return matches(a, b) and matches(b, a)


# ---- SOCI index level ----------------------------------------------------------------------


def check_index_media_types(
    obj: dict[str, Any], entry: Descriptor | None, artifact_type: str, subject: str
) -> CheckResult:
    """Config media type = the artifact type the index was found as; the descriptor naming it is an
    OCI manifest whose artifactType (if any) agrees; ztocs are octet-streams of indexable layers."""
    problems = []
    raw_config = obj.get("config")
    config: dict[str, Any] = raw_config if isinstance(raw_config, dict) else {}
    config_type = config.get("mediaType", "")
    if config_type != artifact_type:
        problems.append(f"config mediaType is {config_type!r}, expected {artifact_type!r}")
    if obj.get("mediaType") != mt.MEDIA_TYPE_OCI_MANIFEST:
        problems.append(f"mediaType is {obj.get('mediaType')!r}, expected {mt.MEDIA_TYPE_OCI_MANIFEST!r}")
    if entry is not None:
        if entry.media_type != mt.MEDIA_TYPE_OCI_MANIFEST:
            problems.append(f"its descriptor's mediaType is {entry.media_type!r}")
        if entry.artifact_type and entry.artifact_type != artifact_type:
            problems.append(
                f"its descriptor's artifactType is {entry.artifact_type!r}, expected {artifact_type!r}"
            )
    for i, layer in enumerate(obj.get("layers") or []):
        if not isinstance(layer, dict):
            continue
        media_type = layer.get("mediaType")
        if media_type not in (mt.MEDIA_TYPE_ZTOC, mt.MEDIA_TYPE_SOCI_PREFETCH):
            problems.append(f"layers[{i}] mediaType {media_type!r} is neither a ztoc nor a prefetch artifact")
            continue
        if media_type == mt.MEDIA_TYPE_ZTOC:
            layer_type = (layer.get("annotations") or {}).get(mt.ANNOTATION_IMAGE_LAYER_MEDIA_TYPE, "")
            compression = mt.compression_of_layer(layer_type) if isinstance(layer_type, str) else None
            if compression not in SUPPORTED_COMPRESSIONS:
                problems.append(f"layers[{i}] indexes a {layer_type!r} layer, which SOCI cannot index")
    if problems:
        return CheckResult(MEDIA_TYPES, False, "; ".join(problems), subject)
    return CheckResult(MEDIA_TYPES, True, f"{artifact_type} index of ztocs", subject)


# ---- ztoc level ----------------------------------------------------------------------------


def decode_ztoc(data: bytes) -> tuple[Ztoc | None, str]:
    """The ztoc and "" or None and why it is unusable (flatbuffer, zinfo blob, span count)."""
    try:
        ztoc = loads(data)
        zinfo = zinfo_of(ztoc)
    except SocikitError as exc:
        return None, str(exc)
    info = ztoc.compression_info
    if info.max_span_id + 1 != zinfo.count:
        return None, f"max_span_id {info.max_span_id} but the zinfo holds {zinfo.count} spans"
    if len(info.span_digests) != zinfo.count:
        return None, f"{len(info.span_digests)} span digests for {zinfo.count} spans"
    return ztoc, ""


def check_ztoc_decodes(ztoc: Ztoc | None, why: str, subject: str) -> CheckResult:
    if ztoc is None:
        return CheckResult(ZTOC_DECODES, False, why, subject)
    info = ztoc.compression_info
    return CheckResult(
        ZTOC_DECODES,
        True,
        f"ztoc {ztoc.version}: {len(ztoc.toc)} entries, {info.num_spans} {info.compression_algorithm} spans",
        subject,
    )


def find_layer(desc: Descriptor, layers: tuple[Descriptor, ...]) -> Descriptor | None:
    digest = desc.annotations.get(mt.ANNOTATION_IMAGE_LAYER_DIGEST)
    return next((layer for layer in layers if layer.digest == digest), None)


def check_ztoc_layer(
    desc: Descriptor, ztoc: Ztoc, layers: tuple[Descriptor, ...], subject: str
) -> CheckResult:
    """The ztoc's annotations name a layer of the manifest, with its media type, and the ztoc's
    compression matches that layer's."""
    digest = desc.annotations.get(mt.ANNOTATION_IMAGE_LAYER_DIGEST, "")
    layer = find_layer(desc, layers)
    if layer is None:
        return CheckResult(
            ZTOC_LAYER, False, f"layer-digest {digest!r} is not a layer of the image manifest", subject
        )
    annotated_type = desc.annotations.get(mt.ANNOTATION_IMAGE_LAYER_MEDIA_TYPE, "")
    if annotated_type != layer.media_type:
        return CheckResult(
            ZTOC_LAYER,
            False,
            f"layer-mediaType {annotated_type!r} but the layer is {layer.media_type!r}",
            subject,
        )
    expected = SUPPORTED_COMPRESSIONS.get(mt.compression_of_layer(layer.media_type) or "")
    if expected != ztoc.compression_info.compression_algorithm:
        return CheckResult(
            ZTOC_LAYER,
            False,
            f"a {ztoc.compression_info.compression_algorithm} ztoc for a {layer.media_type} layer",
            subject,
        )
    return CheckResult(
        ZTOC_LAYER, True, f"indexes layer {short(layer.digest)} ({layer.media_type})", subject
    )


def check_ztoc_size(ztoc: Ztoc, layer: Descriptor, subject: str) -> CheckResult:
    if ztoc.compressed_archive_size != layer.size:
        return CheckResult(
            ZTOC_SIZE,
            False,
            f"compressed_archive_size {ztoc.compressed_archive_size} but the layer is {layer.size} bytes",
            subject,
        )
    zinfo = zinfo_of(ztoc)
    if isinstance(zinfo, TarZinfo) and zinfo.size != layer.size:
        return CheckResult(
            ZTOC_SIZE, False, f"TarZinfo size {zinfo.size} but the layer is {layer.size} bytes", subject
        )
    return CheckResult(ZTOC_SIZE, True, f"compressed_archive_size = layer size = {layer.size}", subject)


def check_ztoc_span_size(desc: Descriptor, ztoc: Ztoc, subject: str) -> CheckResult:
    span_size = zinfo_of(ztoc).span_size
    value = desc.annotations.get(mt.ANNOTATION_SPAN_SIZE)
    if value is None:
        return CheckResult(
            ZTOC_SPAN_SIZE,
            True,
            f"no span-size annotation (indexes before soci v0.12 have none); zinfo span {span_size}",
            subject,
        )
    if not value.isdigit() or int(value) != span_size:
        return CheckResult(
            ZTOC_SPAN_SIZE,
            False,
            f"span-size annotation {value!r} but the zinfo's span size is {span_size}",
            subject,
        )
    return CheckResult(ZTOC_SPAN_SIZE, True, f"span size {span_size}", subject)


def needs_xattrs(ztoc: Ztoc) -> str:
    """Why the snapshotter must expose xattrs for this layer ("" when it need not)."""
    for entry in ztoc.toc:
        if any(key.startswith(_XATTR_PREFIX) for key, _ in entry.xattrs):
            return f"{entry.name!r} has SCHILY.xattr records"
        if entry.name.rstrip("/").endswith(_OPAQUE_WHITEOUT):
            return f"{entry.name!r} is an opaque whiteout"
    return ""


def check_ztoc_annotations(desc: Descriptor, ztoc: Ztoc, subject: str) -> CheckResult:
    """disable-xattrs may only be set when no entry needs xattrs (the snapshotter then hides them)."""
    if desc.annotations.get(mt.ANNOTATION_DISABLE_XATTRS) == "true":
        why = needs_xattrs(ztoc)
        if why:
            return CheckResult(ANNOTATIONS, False, f"disable-xattrs is set but {why}", subject)
        return CheckResult(ANNOTATIONS, True, "disable-xattrs set and no entry has xattrs", subject)
    return CheckResult(ANNOTATIONS, True, "layer annotations present", subject)


__all__ = [
    "SUPPORTED_COMPRESSIONS",
    "check_go_canonical",
    "check_index_media_types",
    "check_schema",
    "check_ztoc_annotations",
    "check_ztoc_decodes",
    "check_ztoc_layer",
    "check_ztoc_size",
    "check_ztoc_span_size",
    "decode_json",
    "decode_ztoc",
    "find_layer",
    "first_difference",
    "go_reencode",
    "needs_xattrs",
    "platform_text",
    "platforms_match",
    "short",
]
