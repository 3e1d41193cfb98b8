"""The ztoc cache: a ztoc is a pure function of (layer digest, span size, build tool id) for a given
builder, so once built it never needs building again, in `convert` and `create` alike. The
builder's format version is part of the key: after an upgrade that changes what the builder
makes, entries made by the older builder are never reused (and would otherwise be, silently)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from socikit.atomic import write_atomic
from socikit.errors import SocikitError
from socikit.oci.digest import digest_hex
from socikit.settings import default_root  # noqa: F401  (re-exported: older callers import it here)
from socikit.ztoc.serialize import loads


class ZtocCache:
    """ztoc bytes on disk under `<root>/ztoc-cache/`, one file per key, written atomically.

    `builder_version` defaults to the running builder's `BUILDER_FORMAT_VERSION`. A `refresh`
    cache (`--force`) never hands out an entry but still stores what is built, so a stale or
    damaged entry is replaced by the rebuilt ztoc."""

    def __init__(self, root: Path, *, builder_version: int | None = None, refresh: bool = False) -> None:
        if builder_version is None:
            # Deferred: commands that only need default_root() do not load the builder.
            from socikit.ztoc.builder import BUILDER_FORMAT_VERSION

            builder_version = BUILDER_FORMAT_VERSION
        self.root = root
        self.directory = root / "ztoc-cache"
        self.builder_version = builder_version
        self.refresh = refresh

    def refreshing(self) -> ZtocCache:
        """The same cache in refresh mode: every ztoc is rebuilt and stored again."""
        return ZtocCache(self.root, builder_version=self.builder_version, refresh=True)

    def _path(self, layer_digest: str, span_size: int, build_tool_identifier: str) -> Path:
        tool = hashlib.sha256(build_tool_identifier.encode("utf-8", "surrogateescape")).hexdigest()[:16]
        return self.directory / f"{digest_hex(layer_digest)}.{span_size}.{tool}.b{self.builder_version}.ztoc"

    def get(self, layer_digest: str, layer_size: int, span_size: int, build_tool_identifier: str) -> bytes | None:
        """The cached ztoc bytes, or None. Entries that no longer decode or describe a blob of another
        size are ignored (and rebuilt by the caller), and so is every entry in refresh mode."""
        if self.refresh:
            return None
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
