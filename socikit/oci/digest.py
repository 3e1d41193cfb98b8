"""sha256 digests in OCI form (`sha256:<hex>`)."""

from __future__ import annotations

import hashlib
import re

from socikit.errors import DigestMismatchError, FormatError

_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


def sha256_digest(data: bytes | bytearray | memoryview) -> str:
    """The OCI digest string of `data`."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def is_digest(value: str) -> bool:
    return bool(_DIGEST_RE.match(value))


def validate_digest(value: str) -> str:
    """Return `value` if it is a sha256 OCI digest, else raise FormatError."""
    if not is_digest(value):
        raise FormatError(f"not a sha256 digest: {value!r}")
    return value


def digest_hex(value: str) -> str:
    """The hex part of a validated digest (used for blob paths)."""
    return validate_digest(value).split(":", 1)[1]


def verify_blob(data: bytes | bytearray | memoryview, *, digest: str, size: int, where: str) -> None:
    """Raise DigestMismatchError unless `data` is exactly `size` bytes whose sha256 is `digest`.

    The one check every reader of content-addressed bytes makes (layouts, archives, registries);
    `where` names the blob for the message (e.g. "blob sha256:ab… in ./layout")."""
    if len(data) != size:
        raise DigestMismatchError(f"{where}: {len(data)} bytes, expected {size}")
    got = sha256_digest(data)
    if got != digest:
        raise DigestMismatchError(f"{where}: content has digest {got}, expected {digest}")
