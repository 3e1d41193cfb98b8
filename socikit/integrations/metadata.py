"""What `docker buildx build --metadata-file FILE` writes, read as facts about the build.

buildx writes one JSON object per build: `containerimage.digest` (the digest of what was exported:
a manifest, or an image index for multi-platform builds), `containerimage.descriptor` (its media
type, digest and size), `image.name` (the names it was pushed or tagged as, comma-separated) and
keys socikit does not need (`buildx.build.ref`, provenance, `containerimage.config.digest`).
`docker buildx bake` writes one such object per target, keyed by target name. Pure functions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from socikit.content.reference import parse_docker_reference
from socikit.errors import ImageError, ImageReferenceError
from socikit.oci.digest import is_digest

DIGEST_KEY = "containerimage.digest"
DESCRIPTOR_KEY = "containerimage.descriptor"
NAME_KEY = "image.name"


@dataclass(frozen=True, slots=True)
class BuildRecord:
    """One exported image: its digest (and media type and size when buildx reported the
    descriptor) and the names it was given. `target` is the bake target ("" for a plain build)."""

    digest: str
    media_type: str = ""
    size: int | None = None
    names: tuple[str, ...] = ()
    target: str = ""

    def source_reference(self) -> str:
        """`HOST/REPO@DIGEST` of the first name: the build exactly, whatever its tags point at now."""
        if not self.names:
            raise ImageError(
                f"{self._what()} has no image name ({NAME_KEY}): it was not pushed; "
                "convert its OCI archive with `socikit hook --oci-archive FILE DST`"
            )
        ref = parse_docker_reference(self.names[0])
        return f"{ref.name}@{self.digest}"

    def _what(self) -> str:
        return f"the build of target {self.target!r}" if self.target else "the build"


def _record(obj: dict[str, Any], where: str, target: str) -> BuildRecord:
    label = f"{where}" + (f" (target {target!r})" if target else "")
    digest = obj.get(DIGEST_KEY)
    if not isinstance(digest, str) or not is_digest(digest):
        raise ImageError(f"{label}: {DIGEST_KEY} is not a sha256 digest: {digest!r}")
    media_type, size = "", None
    descriptor = obj.get(DESCRIPTOR_KEY)
    if descriptor is not None:
        if not isinstance(descriptor, dict):
            raise ImageError(f"{label}: {DESCRIPTOR_KEY} is not a JSON object")
        if descriptor.get("digest") != digest:
            raise ImageError(
                f"{label}: {DESCRIPTOR_KEY} names {descriptor.get('digest')!r}, but {DIGEST_KEY} is {digest}"
            )
        media_type = descriptor.get("mediaType") or ""
        size = descriptor.get("size")
        if not isinstance(media_type, str) or not (
            size is None or (isinstance(size, int) and not isinstance(size, bool) and size >= 0)
        ):
            raise ImageError(f"{label}: {DESCRIPTOR_KEY} has a malformed mediaType or size")
    raw_names = obj.get(NAME_KEY) or ""
    if not isinstance(raw_names, str):
        raise ImageError(f"{label}: {NAME_KEY} is not a string")
    names = tuple(n.strip() for n in raw_names.split(",") if n.strip())
    for name in names:
        try:
            parse_docker_reference(name)
        except ImageReferenceError as exc:
            raise ImageError(f"{label}: {NAME_KEY}: {exc}") from None
    return BuildRecord(digest=digest, media_type=media_type, size=size, names=names, target=target)


def parse_metadata(data: bytes, where: str) -> list[BuildRecord]:
    """The images a metadata file describes (one, or one per bake target in file order).
    Raises ImageError naming `where` when the file is not buildx metadata of an exported image."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ImageError(f"{where} is not a JSON buildx metadata file ({exc})") from None
    if not isinstance(obj, dict):
        raise ImageError(f"{where} is not a buildx metadata file (not a JSON object)")
    if DIGEST_KEY in obj:
        return [_record(obj, where, "")]
    targets = [(k, v) for k, v in obj.items() if isinstance(v, dict) and DIGEST_KEY in v]
    if not targets:
        raise ImageError(
            f"{where} names no exported image ({DIGEST_KEY} is missing): build with --push or "
            "--output type=oci, or type=image"
        )
    return [_record(v, where, k) for k, v in targets]


__all__ = ["BuildRecord", "parse_metadata"]
