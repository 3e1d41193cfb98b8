"""OCI image layouts assembled from a vector's files, and content-addressed edits of them.

`assemble_expected_layout` arranges a vector's `input/` image plus its `expected-current/`
artifacts as the layout a converter would have written: `latest` names the converted image index,
SOCI v1 indexes are listed in index.json with their artifactType. `replace_blob` swaps one blob for
other bytes and rewrites every JSON document that names it (digest, size, annotation values), up to
index.json, so a deliberately broken artifact stays reachable and everything else stays intact.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from socikit.oci import gojson
from socikit.oci import mediatypes as mt

LAYOUT_FILE = b'{"imageLayoutVersion":"1.0.0"}'


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def blob_path(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / digest.split(":", 1)[1]


def write_blob(layout: Path, data: bytes) -> str:
    digest = _digest(data)
    path = blob_path(layout, digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return digest


def assemble_expected_layout(vector: Path, dest: Path) -> Path:
    """Write the converted layout of `vector` (a directory with input/ and expected-current/) to
    `dest`; returns `dest`."""
    expected = vector / "expected-current"
    (dest / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (dest / "oci-layout").write_bytes(LAYOUT_FILE)
    for blob in sorted((vector / "input" / "blobs" / "sha256").iterdir()):
        shutil.copyfile(blob, dest / "blobs" / "sha256" / blob.name)
    write_blob(dest, mt.EMPTY_JSON_BLOB)
    v1_entries = []
    for file in sorted(expected.iterdir()):
        data = file.read_bytes()
        digest = write_blob(dest, data)
        if file.name.startswith("soci-index-v1-"):
            annotations = json.loads(data).get("annotations") or {}
            v1_entries.append(
                {
                    "mediaType": mt.MEDIA_TYPE_OCI_MANIFEST,
                    "digest": digest,
                    "size": len(data),
                    "annotations": annotations,
                    "artifactType": mt.ARTIFACT_TYPE_SOCI_INDEX_V1,
                }
            )
    converted = (expected / "converted-index.json").read_bytes()
    latest = {
        "mediaType": mt.MEDIA_TYPE_OCI_INDEX,
        "digest": _digest(converted),
        "size": len(converted),
        "annotations": {mt.ANNOTATION_REF_NAME: "latest"},
    }
    write_index_json(dest, [latest, *v1_entries])
    return dest


def write_index_json(layout: Path, entries: list[dict[str, Any]]) -> None:
    index = {"schemaVersion": 2, "mediaType": mt.MEDIA_TYPE_OCI_INDEX, "manifests": entries}
    (layout / "index.json").write_bytes(gojson.dumps(index))


def _relink(value: Any, old: str, new: str, size: int) -> tuple[Any, bool]:
    """`value` with every reference to digest `old` pointing at `new` (descriptor sizes updated)."""
    if isinstance(value, dict):
        changed = False
        out = {}
        for key, item in value.items():
            item, hit = _relink(item, old, new, size)
            out[key] = item
            changed |= hit
        if value.get("digest") == old and "size" in out:
            out["size"] = size
        return out, changed
    if isinstance(value, list):
        items = [_relink(item, old, new, size) for item in value]
        return [i for i, _ in items], any(hit for _, hit in items)
    if value == old:
        return new, True
    return value, False


def replace_blob(layout: Path, old_digest: str, data: bytes) -> str:
    """Store `data` in place of blob `old_digest` and rewrite every JSON blob and index.json that
    refers to it (recursively, as their own digests change). Returns the new digest."""
    new_digest = write_blob(layout, data)
    if new_digest == old_digest:
        return new_digest
    blob_path(layout, old_digest).unlink()
    needle = old_digest.encode()
    while True:
        # Rewriting one document re-links the documents above it, and their new versions may still
        # name the old digest elsewhere: rescan until nothing does (the graph is acyclic).
        path = next(
            (p for p in sorted((layout / "blobs" / "sha256").iterdir()) if needle in p.read_bytes()), None
        )
        if path is None:
            break
        relinked, _ = _relink(json.loads(path.read_bytes()), old_digest, new_digest, len(data))
        replace_blob(layout, "sha256:" + path.name, gojson.dumps(relinked))
    index = json.loads((layout / "index.json").read_bytes())
    relinked, hit = _relink(index, old_digest, new_digest, len(data))
    if hit:
        (layout / "index.json").write_bytes(gojson.dumps(relinked))
    return new_digest


def read_json(layout: Path, digest: str) -> Any:
    return json.loads(blob_path(layout, digest).read_bytes())


__all__ = [
    "assemble_expected_layout",
    "blob_path",
    "read_json",
    "replace_blob",
    "write_blob",
    "write_index_json",
]
