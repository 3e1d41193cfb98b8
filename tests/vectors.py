"""Access to the golden conformance vectors shipped in conformance/vectors (made by the reference Go tools)
and to socikit's own extra cases in conformance/vectors-extra (made by scripts/make_extra_vectors.py
from the fact sheet's rules, for features the reference vectors do not exercise)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFORMANCE = REPO_ROOT / "conformance"
VECTORS_DIR = CONFORMANCE / "vectors"
EXTRA_VECTORS_DIR = CONFORMANCE / "vectors-extra"
# The OCI project's own schema files are not ours to ship; the one test that cross-checks against
# them looks for a sibling checkout and skips without it.
OCI_SCHEMA_CHECKOUT = REPO_ROOT.parent / "shared" / "reference" / "oci-image-spec-schema" / "v1.1.1"


@dataclass(frozen=True)
class Vector:
    name: str
    path: Path

    @property
    def params(self) -> dict[str, Any]:
        return json.loads((self.path / "params.json").read_text())

    @property
    def summary(self) -> dict[str, Any]:
        return json.loads((self.path / "expected" / "summary.json").read_text())

    @property
    def input_dir(self) -> Path:
        return self.path / "input"

    def blob(self, digest: str) -> Path:
        return self.input_dir / "blobs" / "sha256" / digest.split(":", 1)[1]

    def expected_ztocs(self) -> dict[str, bytes]:
        """ztoc digest -> bytes, from expected/."""
        out = {}
        for f in sorted((self.path / "expected").glob("ztoc-*.bin")):
            out["sha256:" + f.name[len("ztoc-"):-len(".bin")]] = f.read_bytes()
        return out

    def layer_ztoc_pairs(self) -> list[tuple[dict[str, Any], str]]:
        """(layer descriptor info, ztoc digest) for every indexed layer in the v1 summary."""
        pairs = []
        seen = set()
        for idx in self.summary.get("soci_index_v1", []):
            for layer in idx["layers"]:
                if "ztoc" not in layer or layer["ztoc"] in seen:
                    continue
                seen.add(layer["ztoc"])
                pairs.append((layer, layer["ztoc"]))
        return pairs


def all_vectors() -> list[Vector]:
    return [Vector(p.name, p) for p in sorted(VECTORS_DIR.iterdir()) if p.is_dir()]


def extra_vectors() -> list[Vector]:
    """The socikit-made cases (params may carry `optimizations` and `prefetch_files`)."""
    return [Vector(p.name, p) for p in sorted(EXTRA_VECTORS_DIR.iterdir()) if (p / "params.json").is_file()]
