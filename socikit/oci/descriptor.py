"""OCI content descriptors and platforms (image-spec v1.1 `descriptor.md`), with JSON mapping in
Go struct-field order (ocispec.Descriptor / ocispec.Platform)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from socikit.errors import FormatError
from socikit.oci.digest import sha256_digest
from socikit.oci.gojson import sorted_map


@dataclass(frozen=True, slots=True)
class Platform:
    architecture: str
    os: str
    os_version: str = ""
    os_features: tuple[str, ...] = ()
    variant: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        if self.variant:
            out["variant"] = self.variant
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Platform:
        if not isinstance(obj, dict):
            raise FormatError("platform is not a JSON object")
        return cls(
            architecture=str(obj.get("architecture") or ""),
            os=str(obj.get("os") or ""),
            os_version=str(obj.get("os.version") or ""),
            os_features=tuple(obj.get("os.features") or ()),
            variant=str(obj.get("variant") or ""),  # JSON null is Go's empty string
        )

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    urls: tuple[str, ...] = ()
    annotations: dict[str, str] = field(default_factory=dict, hash=False, compare=True)
    data: str | None = None
    platform: Platform | None = None
    artifact_type: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.urls:
            out["urls"] = list(self.urls)
        annotations = sorted_map(self.annotations)
        if annotations:
            out["annotations"] = annotations
        if self.data is not None:
            out["data"] = self.data
        if self.platform is not None:
            out["platform"] = self.platform.to_json()
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out

    @classmethod
    def from_json(cls, obj: Any) -> Descriptor:
        if not isinstance(obj, dict):
            raise FormatError("descriptor is not a JSON object")
        try:
            size = obj["size"]
            digest = obj["digest"]
        except KeyError as exc:
            raise FormatError(f"descriptor lacks {exc.args[0]!r}") from None
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise FormatError(f"descriptor size is not a non-negative integer: {size!r}")
        platform = obj.get("platform")
        return cls(
            media_type=str(obj.get("mediaType") or ""),
            digest=str(digest),
            size=size,
            urls=tuple(obj.get("urls") or ()),
            annotations=dict(obj.get("annotations") or {}),
            data=obj.get("data") or None,  # Go omits an empty []byte
            platform=Platform.from_json(platform) if platform is not None else None,
            artifact_type=str(obj.get("artifactType") or ""),
        )

    def with_changes(self, **changes: Any) -> Descriptor:
        return replace(self, **changes)


def descriptor_for(data: bytes, media_type: str, **extra: Any) -> Descriptor:
    """The descriptor of an in-memory blob."""
    return Descriptor(media_type=media_type, digest=sha256_digest(data), size=len(data), **extra)
