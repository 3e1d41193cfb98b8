"""The ztoc cache: a ztoc is a pure function of (layer digest, span size, build tool id), so once
built it never needs building again, in `convert` and `create` alike."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from socikit.atomic import write_atomic
from socikit.errors import SocikitError
from socikit.oci.digest import digest_hex
from socikit.ztoc.serialize import loads


def default_root() -> Path:
    """`$SOCIKIT_ROOT`, else /var/lib/socikit for root, else ~/.local/share/socikit."""
    env = os.environ.get("SOCIKIT_ROOT")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/lib/socikit")
    return Path.home() / ".local" / "share" / "socikit"


class ZtocCache:
    """ztoc bytes on disk under `<root>/ztoc-cache/`, one file per key, written atomically."""

    def __init__(self, root: Path) -> None:
        self.directory = root / "ztoc-cache"

    def _path(self, layer_digest: str, span_size: int, build_tool_identifier: str) -> Path:
        tool = hashlib.sha256(build_tool_identifier.encode("utf-8", "surrogateescape")).hexdigest()[:16]
        return self.directory / f"{digest_hex(layer_digest)}.{span_size}.{tool}.ztoc"

    def get(self, layer_digest: str, layer_size: int, span_size: int, build_tool_identifier: str) -> bytes | None:
        """The cached ztoc bytes, or None. Entries that no longer decode or describe a blob of another
        size are ignored (and rebuilt by the caller)."""
        path = self._path(layer_digest, span_size, build_tool_identifier)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        try:
            ztoc = loads(data)
        except SocikitError:
            return None
        if ztoc.compressed_archive_size != layer_size or ztoc.build_tool_identifier != build_tool_identifier:
            return None
        return data

    def put(self, layer_digest: str, span_size: int, build_tool_identifier: str, data: bytes) -> None:
        try:
            write_atomic(self._path(layer_digest, span_size, build_tool_identifier), data)
        except OSError:
            pass  # a cache that cannot be written only costs speed
