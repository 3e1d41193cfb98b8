#!/usr/bin/env python3
"""Build a sample container image as an OCI image layout from real files on this machine.

Each layer is a PAX tar of real files from a system directory, compressed with `gzip -6 -n`
(or `pigz` when installed); the config carries the host platform. Used by the README quick start,
the benchmarks and the tests.

    python3 scripts/make_sample_image.py DEST [--layer DIR:MB ...] [--tag latest]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

DEFAULT_LAYERS = [
    f"{sys.prefix}/lib:4",
    "/usr/share/doc:40",
    "/usr/lib/python3:8",
]


def _arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)


def _write_blob(layout: Path, data: bytes) -> tuple[str, int]:
    digest = hashlib.sha256(data).hexdigest()
    path = layout / "blobs" / "sha256" / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return "sha256:" + digest, len(data)


def make_layer_tar(source: Path, limit_bytes: int, out: Path, prefix: str) -> None:
    """A PAX tar of files below `source` (sorted walk) holding about `limit_bytes` of file data."""
    total = 0
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(source):
            dirnames.sort()
            rel_dir = Path(dirpath).relative_to(source.parent)
            tar.add(dirpath, arcname=f"{prefix}{rel_dir}", recursive=False)
            for name in sorted(filenames):
                path = Path(dirpath) / name
                if not (path.is_file() or path.is_symlink()):
                    continue
                try:
                    tar.add(path, arcname=f"{prefix}{rel_dir}/{name}", recursive=False)
                except OSError:
                    continue
                if path.is_file() and not path.is_symlink():
                    total += path.stat().st_size
                if total >= limit_bytes:
                    return


def gzip_file(path: Path) -> bytes:
    tool = shutil.which("pigz") or "gzip"
    with open(path, "rb") as src:
        return subprocess.run([tool, "-6", "-n", "-c"], stdin=src, stdout=subprocess.PIPE, check=True).stdout


def build_image(dest: Path, layers: list[tuple[Path, int]], *, tag: str = "latest") -> str:
    """Write an OCI layout at `dest` with one gzip layer per (directory, uncompressed MB) pair;
    returns the manifest digest."""
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    layer_descs, diff_ids = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (source, size_mb) in enumerate(layers):
            tar_path = Path(tmp) / f"layer{i}.tar"
            make_layer_tar(source, size_mb << 20, tar_path, prefix=f"layer{i}/")
            diff_ids.append("sha256:" + hashlib.sha256(tar_path.read_bytes()).hexdigest())
            digest, size = _write_blob(dest, gzip_file(tar_path))
            layer_descs.append(
                {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": size}
            )
    config = {
        "architecture": _arch(),
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    config_digest, config_size = _write_blob(dest, json.dumps(config, separators=(",", ":")).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest,
                   "size": config_size},
        "layers": layer_descs,
    }
    manifest_digest, manifest_size = _write_blob(dest, json.dumps(manifest, separators=(",", ":")).encode())
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest,
                       "size": manifest_size, "annotations": {"org.opencontainers.image.ref.name": tag}}],
    }
    (dest / "index.json").write_text(json.dumps(index, separators=(",", ":")))
    return manifest_digest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--layer", action="append", help="DIR:MB (uncompressed MB of real files; repeatable)")
    parser.add_argument("--tag", default="latest")
    args = parser.parse_args()
    specs = args.layer or DEFAULT_LAYERS
    layers = []
    for spec in specs:
        directory, _, mb = spec.rpartition(":")
        layers.append((Path(directory), int(mb)))
    if args.dest.exists():
        shutil.rmtree(args.dest)
    digest = build_image(args.dest, layers, tag=args.tag)
    print(f"sample image written to oci:{args.dest}:{args.tag} (manifest {digest})")


if __name__ == "__main__":
    main()
