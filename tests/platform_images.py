"""Small images for any platform, written as OCI layouts (no registry is reachable here): one
gzip layer of generated files per image, optionally gathered in a multi-platform image index with
buildx-style attestation manifests. Used by the merge and build-integration tests."""

from __future__ import annotations

import gzip
import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.images import TarBuilder

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def layer_tar(seed: str, files: int = 40, size: int = 6000) -> bytes:
    """A tar of `files` files of pseudo-random text (compressible, distinct per seed)."""
    rng = random.Random(seed)
    builder = TarBuilder()
    words = [f"{seed}-{i}" for i in range(200)]
    for i in range(files):
        text = " ".join(rng.choice(words) for _ in range(size // 8)).encode()[:size]
        builder.file(f"data/{seed}/file{i:03d}.txt", text)
    return builder.finish()


@dataclass
class Written:
    digest: str
    size: int
    media_type: str


class LayoutWriter:
    """Blobs into `root/blobs/sha256`, the layout's index.json written by `tag`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        self.tags: list[dict[str, object]] = []

    def put(self, data: bytes) -> str:
        digest = _digest(data)
        (self.root / "blobs" / "sha256" / digest.split(":", 1)[1]).write_bytes(data)
        return digest

    def image(self, arch: str, *, seed: str | None = None, variant: str = "", files: int = 40,
              created: str = "2024-01-01T00:00:00Z", shared: Sequence[str] = ()) -> Written:
        """One single-platform image manifest (linux/`arch`[/`variant`]): a layer of its own, then
        one per `shared` seed (the same bytes in every image given that seed)."""
        layers, diff_ids = [], []
        for layer_seed in (seed or f"{arch}{variant}", *shared):
            tar = layer_tar(layer_seed, files=files)
            blob = gzip.compress(tar, compresslevel=6, mtime=0)
            layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": self.put(blob),
                           "size": len(blob)})
            diff_ids.append(_digest(tar))
        config: dict[str, object] = {"architecture": arch, "os": "linux", "created": created,
                                     "config": {"Cmd": ["/bin/sh"]},
                                     "rootfs": {"type": "layers", "diff_ids": diff_ids}}
        if variant:
            config["variant"] = variant
        config_bytes = _json(config)
        manifest = _json({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                          "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                     "digest": self.put(config_bytes), "size": len(config_bytes)},
                          "layers": layers})
        return Written(self.put(manifest), len(manifest), OCI_MANIFEST)

    def attestation(self, subject: Written) -> dict[str, object]:
        """A buildx-style attestation manifest entry for `subject` (platform unknown/unknown)."""
        statement = _json({"_type": "https://in-toto.io/Statement/v0.1", "subject": [{"digest": subject.digest}]})
        config = b"{}"
        manifest = _json({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                          "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                     "digest": self.put(config), "size": len(config)},
                          "layers": [{"mediaType": "application/vnd.in-toto+json", "digest": self.put(statement),
                                      "size": len(statement),
                                      "annotations": {"in-toto.io/predicate-type": "https://spdx.dev/Document"}}]})
        return {"mediaType": OCI_MANIFEST, "digest": self.put(manifest), "size": len(manifest),
                "annotations": {"vnd.docker.reference.digest": subject.digest,
                                "vnd.docker.reference.type": "attestation-manifest"},
                "platform": {"architecture": "unknown", "os": "unknown"}}

    def index(self, images: Sequence[tuple[Written, str, str]], *, attestations: bool = False) -> Written:
        """An image index of (manifest, arch, variant) entries, attestation entries after them."""
        entries: list[dict[str, object]] = []
        for written, arch, variant in images:
            platform = {"architecture": arch, "os": "linux", **({"variant": variant} if variant else {})}
            entries.append({"mediaType": written.media_type, "digest": written.digest, "size": written.size,
                            "platform": platform})
        if attestations:
            entries += [self.attestation(written) for written, _, _ in images]
        data = _json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
        return Written(self.put(data), len(data), OCI_INDEX)

    def tag(self, written: Written, name: str) -> None:
        self.tags.append({"mediaType": written.media_type, "digest": written.digest, "size": written.size,
                          "annotations": {"org.opencontainers.image.ref.name": name}})
        (self.root / "index.json").write_text(json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": self.tags}))
