"""Served layers remembered on disk, so that a restarted store serves the same lookup keys again.

containers/storage keeps a layer it took from the store as a symlink into the mount
(`<layer dir>/diff`), and overlay follows it for every container it starts, long after the
pull. So a lookup key (image reference, digest) once served must resolve again after the store
restarts, also while the registry is down: its record here names everything `info`, `diff` and
`blob` need except the ztoc, which stays in the lazy artifact store (content-addressed, checked on
read) next to it. A key names content (a layer digest, or the ztoc digest of one layer), so a
record never goes stale when a tag moves.

`<directory>/<sha256(reference NUL digest)>.json`, one JSON object per key:
`{"reference", "digest", "form", "manifest", "layer": <descriptor>, "diff_id", "diff_size",
"compression", "ztoc": <descriptor>, "disable_xattrs", "prefetch_spans"}`. A record that cannot
be read is ignored (the key is resolved from the registry again) and replaced.

Blocking (disk); thread-safe (each record is written by an atomic rename).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from socikit.atomic import write_atomic
from socikit.errors import FormatError
from socikit.oci.descriptor import Descriptor
from socikit.store.layout import IndexedLayer, LayerForm, LayerKey, is_digest_name

__all__ = ["LayerRecord", "LayerRecords", "dumps_record", "loads_record"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LayerRecord:
    """A served lookup key and what serving it needs (see the module doc). `diff_size` is -1 for
    the TOC-digest form, whose `info` does not give it."""

    key: LayerKey
    form: LayerForm
    manifest_digest: str
    layer: IndexedLayer
    diff_size: int
    disable_xattrs: bool
    prefetch_spans: tuple[int, ...] = ()


def dumps_record(record: LayerRecord) -> bytes:
    document = {
        "reference": record.key.reference,
        "digest": record.key.digest,
        "form": record.form.value,
        "manifest": record.manifest_digest,
        "layer": record.layer.descriptor.to_json(),
        "diff_id": record.layer.diff_id,
        "diff_size": record.diff_size,
        "compression": record.layer.compression,
        "ztoc": record.layer.ztoc.to_json(),
        "disable_xattrs": record.disable_xattrs,
        "prefetch_spans": list(record.prefetch_spans),
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _field(document: dict[str, Any], name: str, kind: type[Any]) -> Any:
    value = document.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise FormatError(f"record field {name!r} is missing or not {kind.__name__}")
    return value


def loads_record(data: bytes) -> LayerRecord:
    """The record a file holds; FormatError when it is not one."""
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise FormatError(f"not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise FormatError("not a JSON object")
    key = LayerKey(_field(document, "reference", str), _field(document, "digest", str))
    manifest = _field(document, "manifest", str)
    diff_id = _field(document, "diff_id", str)
    for digest in (key.digest, manifest, diff_id):
        if not is_digest_name(digest):
            raise FormatError(f"record digest {digest[:80]!r} is not a sha256 digest")
    try:
        form = LayerForm(_field(document, "form", str))
        layer = IndexedLayer(Descriptor.from_json(_field(document, "layer", dict)), diff_id,
                             Descriptor.from_json(_field(document, "ztoc", dict)),
                             _field(document, "compression", int))
    except (ValueError, KeyError, TypeError) as exc:
        raise FormatError(f"record: {exc}") from None
    spans = _field(document, "prefetch_spans", list)
    if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in spans):
        raise FormatError("record field 'prefetch_spans' is not a list of span ids")
    return LayerRecord(key, form, manifest, layer, _field(document, "diff_size", int),
                       _field(document, "disable_xattrs", bool), tuple(spans))


class LayerRecords:
    """The records under one directory (created when missing)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def _path(self, key: LayerKey) -> Path:
        name = hashlib.sha256(f"{key.reference}\0{key.digest}".encode()).hexdigest()
        return self.directory / f"{name}.json"

    def get(self, key: LayerKey) -> LayerRecord | None:
        path = self._path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning("record of %s %s not read: %s", key.reference, key.digest, exc.strerror or exc)
            return None
        try:
            record = loads_record(data)
        except FormatError as exc:
            logger.warning("record of %s %s ignored: %s", key.reference, key.digest, exc)
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        return record if record.key == key else None

    def put(self, record: LayerRecord) -> None:
        write_atomic(self._path(record.key), dumps_record(record))
