"""OCI image manifests, image indexes (and their Docker schema2 equivalents) and image configs,
mapped to and from JSON exactly as Go's encoding/json does with the `ocispec` structs: fields in
struct order, `omitempty` where the struct has it, unknown fields dropped."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from socikit.errors import FormatError
from socikit.oci import gojson
from socikit.oci.descriptor import Descriptor, Platform
from socikit.oci.platform import normalize


def _load(data: bytes | dict[str, Any], what: str) -> dict[str, Any]:
    if isinstance(data, dict):
        return data
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FormatError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise FormatError(f"{what} is not a JSON object")
    return obj


def _annotations(obj: dict[str, Any], what: str) -> dict[str, str]:
    value = obj.get("annotations") or {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise FormatError(f"{what} annotations must map strings to strings")
    return dict(value)


def _schema_version(obj: dict[str, Any], what: str) -> int:
    version = obj.get("schemaVersion", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise FormatError(f"{what} schemaVersion must be an integer")
    return version


@dataclass(frozen=True, slots=True)
class ImageManifest:
    schema_version: int
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...] | None  # None: Go nil slice (marshals as null)
    artifact_type: str = ""
    subject: Descriptor | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: bytes | dict[str, Any]) -> ImageManifest:
        obj = _load(data, "manifest")
        config = obj.get("config")
        if not isinstance(config, dict):
            raise FormatError("manifest has no config descriptor")
        layers = obj.get("layers")
        if layers is not None and not isinstance(layers, list):
            raise FormatError("manifest layers must be a list")
        subject = obj.get("subject")
        return cls(
            schema_version=_schema_version(obj, "manifest"),
            media_type=str(obj.get("mediaType", "")),
            config=Descriptor.from_json(config),
            layers=tuple(Descriptor.from_json(layer) for layer in layers) if layers is not None else None,
            artifact_type=str(obj.get("artifactType", "")),
            subject=Descriptor.from_json(subject) if subject is not None else None,
            annotations=_annotations(obj, "manifest"),
        )

    @property
    def layer_list(self) -> tuple[Descriptor, ...]:
        return self.layers or ()

    def to_json(self) -> dict[str, Any]:
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
        return gojson.dumps(self.to_json())

    def with_changes(self, **changes: Any) -> ImageManifest:
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class ImageIndex:
    schema_version: int
    media_type: str
    manifests: tuple[Descriptor, ...] | None
    artifact_type: str = ""
    subject: Descriptor | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: bytes | dict[str, Any]) -> ImageIndex:
        obj = _load(data, "image index")
        manifests = obj.get("manifests")
        if manifests is not None and not isinstance(manifests, list):
            raise FormatError("image index manifests must be a list")
        subject = obj.get("subject")
        return cls(
            schema_version=_schema_version(obj, "image index"),
            media_type=str(obj.get("mediaType", "")),
            manifests=tuple(Descriptor.from_json(m) for m in manifests) if manifests is not None else None,
            artifact_type=str(obj.get("artifactType", "")),
            subject=Descriptor.from_json(subject) if subject is not None else None,
            annotations=_annotations(obj, "image index"),
        )

    @property
    def entries(self) -> tuple[Descriptor, ...]:
        return self.manifests or ()

    def to_json(self) -> dict[str, Any]:
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
        return gojson.dumps(self.to_json())

    def with_changes(self, **changes: Any) -> ImageIndex:
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """The parts of an image config socikit needs."""

    architecture: str
    os: str
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = ()
    diff_ids: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: bytes | dict[str, Any]) -> ImageConfig:
        obj = _load(data, "image config")
        rootfs = obj.get("rootfs") or {}
        return cls(
            architecture=str(obj.get("architecture", "")),
            os=str(obj.get("os", "")),
            variant=str(obj.get("variant", "")),
            os_version=str(obj.get("os.version", "")),
            os_features=tuple(obj.get("os.features") or ()),
            diff_ids=tuple(rootfs.get("diff_ids") or ()) if isinstance(rootfs, dict) else (),
        )

    def platform(self) -> Platform:
        """The image's platform, containerd-normalized (as the reference records it)."""
        return normalize(Platform(architecture=self.architecture, os=self.os, os_version=self.os_version,
                                  os_features=self.os_features, variant=self.variant))
