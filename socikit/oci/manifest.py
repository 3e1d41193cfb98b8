"""OCI image manifests and image indexes (image-spec v1.1), their Docker schema2 equivalents, and
the platform part of image configs.

The reference converter reads manifests with Go's `json.Unmarshal` into the `ocispec` structs and
writes them back with `json.Marshal`, so parsing here reproduces what that round trip keeps:

* unknown fields are dropped; keys match struct fields case-insensitively (exact match first);
* a repeated key updates the field again (objects and maps merge into the earlier value);
* `null` leaves strings, numbers and embedded structs alone and empties slices, maps, pointers;
* `data` is base64-decoded and re-encoded; invalid UTF-8 and lone surrogates become U+FFFD;
* a value of the wrong JSON type is an error (FormatError), as it is for Go.

Serializing (`to_json` / `dumps`) writes fields in Go struct order with the structs' `omitempty`
rules (`layers`/`manifests` are not omitempty: a missing list is written as `null`).
Media types are kept as given; converting Docker types to OCI is the converter's business.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

from socikit.errors import FormatError
from socikit.oci import gojson
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor, Platform
from socikit.oci.platform import normalize

# ---------------------------------------------------------------------------------------------
# A small schema-driven model of Go's encoding/json decoder for the few structs involved.
#
# Kinds: "str", "int" (int64), "bytes" ([]byte), "raw" (json.RawMessage: true when present),
# ("list", kind), ("map",) (map[string]string), ("ptr", fields), ("struct", fields);
# fields is a tuple of (json name, kind) in Go struct order.
# Decoded structs are dicts keyed by json name; absent keys hold Go's zero value.

_Kind = Any
_PLATFORM_FIELDS: tuple[tuple[str, _Kind], ...] = (
    ("architecture", "str"),
    ("os", "str"),
    ("os.version", "str"),
    ("os.features", ("list", "str")),
    ("variant", "str"),
)
_DESCRIPTOR_FIELDS: tuple[tuple[str, _Kind], ...] = (
    ("mediaType", "str"),
    ("digest", "str"),
    ("size", "int"),
    ("urls", ("list", "str")),
    ("annotations", ("map",)),
    ("data", "bytes"),
    ("platform", ("ptr", _PLATFORM_FIELDS)),
    ("artifactType", "str"),
)
_MANIFEST_FIELDS: tuple[tuple[str, _Kind], ...] = (
    ("schemaVersion", "int"),
    ("mediaType", "str"),
    ("artifactType", "str"),
    ("config", ("struct", _DESCRIPTOR_FIELDS)),
    ("layers", ("list", ("struct", _DESCRIPTOR_FIELDS))),
    ("subject", ("ptr", _DESCRIPTOR_FIELDS)),
    ("annotations", ("map",)),
)
_INDEX_FIELDS: tuple[tuple[str, _Kind], ...] = (
    ("schemaVersion", "int"),
    ("mediaType", "str"),
    ("artifactType", "str"),
    ("manifests", ("list", ("struct", _DESCRIPTOR_FIELDS))),
    ("subject", ("ptr", _DESCRIPTOR_FIELDS)),
    ("annotations", ("map",)),
)
# ocispec.Image: the embedded Platform fields plus rootfs (other config fields are not needed).
_CONFIG_FIELDS: tuple[tuple[str, _Kind], ...] = (
    *_PLATFORM_FIELDS,
    ("rootfs", ("struct", (("type", "str"), ("diff_ids", ("list", "str"))))),
)
# containerd's `unknownDocument`, used to check that a blob is what its media type claims.
_DOCUMENT_FIELDS: tuple[tuple[str, _Kind], ...] = (
    ("mediaType", "str"),
    ("config", "raw"),
    ("layers", "raw"),
    ("manifests", "raw"),
    ("fsLayers", "raw"),
)

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_SURROGATES = re.compile("[\ud800-\udfff]")
_FOLD_TO_ASCII = {"\u017f": "S", "\u212a": "K"}


class _Object:
    """A JSON object as its key/value pairs in document order (duplicates kept, as Go sees them)."""

    __slots__ = ("pairs",)

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        self.pairs = pairs


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _parse_json(data: bytes | bytearray | memoryview | str, what: str) -> Any:
    if isinstance(data, str):
        text = data
    else:
        # Go does not reject invalid UTF-8 inside strings; keep the bytes for `_go_string`.
        text = bytes(data).decode("utf-8", "surrogateescape")
    try:
        return json.loads(text, object_pairs_hook=_Object, parse_constant=_reject_constant)
    except ValueError as exc:
        raise FormatError(f"{what} is not valid JSON: {exc}") from None


def _go_string(text: str) -> str:
    # Invalid UTF-8 bytes (decoded as surrogate escapes) and unpaired \\uD8xx escapes both become
    # U+FFFD in Go, one per byte / escape.
    return _SURROGATES.sub("\ufffd", text) if _SURROGATES.search(text) else text


def _pairs(value: Any) -> list[tuple[str, Any]] | None:
    if isinstance(value, _Object):
        return value.pairs
    if isinstance(value, dict):
        return list(value.items())
    return None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _fold(name: str) -> str:
    """Go's case folding of JSON keys for field matching: ASCII letters case-insensitive, plus the
    only two non-ASCII runes whose fold set holds an ASCII letter (U+017F long s, U+212A Kelvin)."""
    return "".join(ch.upper() if ch.isascii() else _FOLD_TO_ASCII.get(ch, ch) for ch in name)


def _field_for(fields: tuple[tuple[str, _Kind], ...], key: str) -> tuple[str, _Kind] | None:
    for name, kind in fields:
        if name == key:
            return name, kind
    folded = _fold(key)
    for name, kind in fields:
        if name.upper() == folded:
            return name, kind
    return None


def _zero(kind: _Kind) -> Any:
    if kind == "str":
        return ""
    if kind == "int":
        return 0
    if isinstance(kind, tuple) and kind[0] == "struct":
        return {}
    return None


def _decode(kind: _Kind, value: Any, current: Any, path: str, what: str) -> Any:
    """Decode JSON `value` into a Go value of `kind` whose previous content is `current`."""

    def wrong(expected: str) -> FormatError:
        return FormatError(f"{what}: {path} must be {expected}, not {_json_type(value)}")

    if kind == "str":
        if value is None:
            return current
        if not isinstance(value, str):
            raise wrong("a string")
        return _go_string(value)
    if kind == "int":
        if value is None:
            return current
        if not isinstance(value, int) or isinstance(value, bool):
            raise wrong("an integer")
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise FormatError(f"{what}: {path} does not fit in 64 bits: {value}")
        return value
    if kind == "bytes":
        if value is None:
            return None
        if not isinstance(value, str):
            raise wrong("a base64 string")
        try:
            return base64.b64decode(value.replace("\r", "").replace("\n", ""), validate=True)
        except (binascii.Error, ValueError):
            raise FormatError(f"{what}: {path} is not valid base64") from None
    if kind == "raw":
        return True
    tag = kind[0]
    if tag == "list":
        if value is None:
            return None
        if not isinstance(value, list):
            raise wrong("an array")
        old = current or []
        # Go decodes each element into the slice's existing element at that position.
        return [
            _decode(kind[1], item, old[i] if i < len(old) else _zero(kind[1]), f"{path}[{i}]", what)
            for i, item in enumerate(value)
        ]
    if tag == "map":
        if value is None:
            return None
        pairs = _pairs(value)
        if pairs is None:
            raise wrong("an object of strings")
        merged = dict(current) if current is not None else {}
        for key, item in pairs:
            merged[_go_string(key)] = _decode("str", item, "", f"{path}[{key!r}]", what)
        return merged
    if tag == "ptr":
        if value is None:
            return None
        return _decode(("struct", kind[1]), value, current if current is not None else {}, path, what)
    # struct
    if value is None:
        return current
    pairs = _pairs(value)
    if pairs is None:
        raise wrong("an object")
    state = dict(current)
    for key, item in pairs:
        found = _field_for(kind[1], _go_string(key))
        if found is None:
            continue  # unknown field: dropped
        name, field_kind = found
        child = f"{path}.{name}" if path else name
        state[name] = _decode(field_kind, item, state.get(name, _zero(field_kind)), child, what)
    return state


def _decode_root(data: bytes | bytearray | memoryview | str | dict[str, Any],
                 fields: tuple[tuple[str, _Kind], ...], what: str) -> dict[str, Any]:
    value = data if isinstance(data, dict) else _parse_json(data, what)
    if _pairs(value) is None:
        raise FormatError(f"{what} is not a JSON object but {_json_type(value)}")
    state: dict[str, Any] = _decode(("struct", fields), value, {}, "", what)
    return state


def _platform(state: dict[str, Any] | None) -> Platform | None:
    if state is None:
        return None
    return Platform(
        architecture=state.get("architecture", ""),
        os=state.get("os", ""),
        os_version=state.get("os.version", ""),
        os_features=tuple(state.get("os.features") or ()),
        variant=state.get("variant", ""),
    )


def _descriptor(state: dict[str, Any]) -> Descriptor:
    data = state.get("data")
    return Descriptor(
        media_type=state.get("mediaType", ""),
        digest=state.get("digest", ""),
        size=state.get("size", 0),
        urls=tuple(state.get("urls") or ()),
        annotations=dict(state.get("annotations") or {}),
        # []byte with omitempty: an empty value is not written back.
        data=base64.b64encode(data).decode("ascii") if data else None,
        platform=_platform(state.get("platform")),
        artifact_type=state.get("artifactType", ""),
    )


def _descriptors(states: list[dict[str, Any]] | None) -> tuple[Descriptor, ...] | None:
    return tuple(_descriptor(s) for s in states) if states is not None else None


# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImageManifest:
    """`ocispec.Manifest` (also holds Docker schema2 manifests, media types as given)."""

    schema_version: int
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...] | None  # None: Go nil slice (marshals as null)
    artifact_type: str = ""
    subject: Descriptor | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: bytes | bytearray | memoryview | str | dict[str, Any]) -> ImageManifest:
        """Parse manifest JSON as Go's json.Unmarshal into ocispec.Manifest would. Raises FormatError."""
        state = _decode_root(data, _MANIFEST_FIELDS, "manifest")
        subject = state.get("subject")
        return cls(
            schema_version=state.get("schemaVersion", 0),
            media_type=state.get("mediaType", ""),
            config=_descriptor(state.get("config", {})),
            layers=_descriptors(state.get("layers")),
            artifact_type=state.get("artifactType", ""),
            subject=_descriptor(subject) if subject is not None else None,
            annotations=dict(state.get("annotations") or {}),
        )

    @property
    def layer_list(self) -> tuple[Descriptor, ...]:
        return self.layers or ()

    def to_json(self) -> dict[str, Any]:
        """The manifest as a dict in Go struct-field order, omitempty applied."""
        out: dict[str, Any] = {"schemaVersion": self.schema_version}
        if self.media_type:
            out["mediaType"] = self.media_type
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        out["config"] = self.config.to_json()
        out["layers"] = [layer.to_json() for layer in self.layers] if self.layers is not None else None
        if self.subject is not None:
            out["subject"] = self.subject.to_json()
        annotations = gojson.sorted_map(self.annotations)
        if annotations:
            out["annotations"] = annotations
        return out

    def dumps(self) -> bytes:
        """The bytes Go's json.Marshal writes for this manifest."""
        return gojson.dumps(self.to_json())

    def with_changes(self, **changes: Any) -> ImageManifest:
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class ImageIndex:
    """`ocispec.Index` (also holds Docker manifest lists, media types as given)."""

    schema_version: int
    media_type: str
    manifests: tuple[Descriptor, ...] | None  # None: Go nil slice (marshals as null)
    artifact_type: str = ""
    subject: Descriptor | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: bytes | bytearray | memoryview | str | dict[str, Any]) -> ImageIndex:
        """Parse index JSON as Go's json.Unmarshal into ocispec.Index would. Raises FormatError."""
        state = _decode_root(data, _INDEX_FIELDS, "image index")
        subject = state.get("subject")
        return cls(
            schema_version=state.get("schemaVersion", 0),
            media_type=state.get("mediaType", ""),
            manifests=_descriptors(state.get("manifests")),
            artifact_type=state.get("artifactType", ""),
            subject=_descriptor(subject) if subject is not None else None,
            annotations=dict(state.get("annotations") or {}),
        )

    @property
    def entries(self) -> tuple[Descriptor, ...]:
        return self.manifests or ()

    def to_json(self) -> dict[str, Any]:
        """The index as a dict in Go struct-field order, omitempty applied."""
        out: dict[str, Any] = {"schemaVersion": self.schema_version}
        if self.media_type:
            out["mediaType"] = self.media_type
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        out["manifests"] = [m.to_json() for m in self.manifests] if self.manifests is not None else None
        if self.subject is not None:
            out["subject"] = self.subject.to_json()
        annotations = gojson.sorted_map(self.annotations)
        if annotations:
            out["annotations"] = annotations
        return out

    def dumps(self) -> bytes:
        """The bytes Go's json.Marshal writes for this index."""
        return gojson.dumps(self.to_json())

    def with_changes(self, **changes: Any) -> ImageIndex:
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """The parts of an image config socikit needs: its platform and the layers' diff IDs."""

    architecture: str
    os: str
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = ()
    diff_ids: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: bytes | bytearray | memoryview | str | dict[str, Any]) -> ImageConfig:
        """Parse an image config (OCI or Docker). Raises FormatError on malformed JSON or wrong types."""
        state = _decode_root(data, _CONFIG_FIELDS, "image config")
        return cls(
            architecture=state.get("architecture", ""),
            os=state.get("os", ""),
            variant=state.get("variant", ""),
            os_version=state.get("os.version", ""),
            os_features=tuple(state.get("os.features") or ()),
            diff_ids=tuple(state.get("rootfs", {}).get("diff_ids") or ()),
        )

    def platform(self) -> Platform:
        """The image's platform as containerd derives it from a config (`ConfigPlatform`):
        every platform field of the config, normalized."""
        return normalize(Platform(architecture=self.architecture, os=self.os, os_version=self.os_version,
                                  os_features=self.os_features, variant=self.variant))


def validate_media_type(data: bytes | bytearray | memoryview | str | dict[str, Any], media_type: str) -> None:
    """containerd's check that a blob is what its descriptor's media type says: schema 1 manifests
    are refused, a manifest type must not look like an index (and vice versa). Other media types
    are not checked. Raises FormatError."""
    doc = _decode_root(data, _DOCUMENT_FIELDS, "manifest")
    if doc.get("fsLayers"):
        raise FormatError("schema 1 manifests are not supported")
    declared = doc.get("mediaType", "")
    if media_type in mt.MANIFEST_MEDIA_TYPES and (doc.get("manifests") or declared in mt.INDEX_MEDIA_TYPES):
        raise FormatError(f"expected a manifest ({media_type}) but found an index")
    if media_type in mt.INDEX_MEDIA_TYPES and (
        doc.get("config") or doc.get("layers") or declared in mt.MANIFEST_MEDIA_TYPES
    ):
        raise FormatError(f"expected an index ({media_type}) but found a manifest")


def is_manifest_type(media_type: str) -> bool:
    """An image manifest media type (OCI or Docker schema2)."""
    return media_type in mt.MANIFEST_MEDIA_TYPES


def is_index_type(media_type: str) -> bool:
    """An image index media type (OCI index or Docker manifest list)."""
    return media_type in mt.INDEX_MEDIA_TYPES

