"""Runnable test images made from this machine's own files (no image registry is reachable here).

`host_rootfs_tar` packs host programs with the shared libraries `ldd` names, so a container of it
runs them; `write_oci_layout` turns tars into an OCI image layout for the host platform; `push`
sends a layout to a registry with skopeo (an independent client). Later layers can add files,
hard links, symlinks, xattrs, whiteouts and opaque directories through `TarBuilder`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import platform
import re
import subprocess
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Programs a test container needs to list a filesystem: the shell, find, stat, sha256sum, cat.
LISTING_TOOLS = ("/bin/sh", "/usr/bin/find", "/usr/bin/stat", "/usr/bin/sha256sum", "/bin/cat", "/bin/ls",
                 "/usr/bin/readlink", "/usr/bin/cut", "/usr/bin/sort")

_LDD_PATH = re.compile(r"(/\S+) \(0x[0-9a-f]+\)")


def shared_libraries(program: str) -> list[str]:
    """Absolute paths of the shared objects `program` loads (its dynamic loader included)."""
    out = subprocess.run(["ldd", program], capture_output=True, text=True, check=False).stdout
    return sorted({m.group(1) for m in _LDD_PATH.finditer(out)})


def _oci_arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


@dataclass
class TarBuilder:
    """A PAX tar assembled entry by entry (deterministic: fixed mtime unless given)."""

    mtime: float = 1_700_000_000.0
    _buf: io.BytesIO = field(default_factory=io.BytesIO)
    _tar: tarfile.TarFile | None = None
    _dirs: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._tar = tarfile.open(fileobj=self._buf, mode="w", format=tarfile.PAX_FORMAT)

    @property
    def tar(self) -> tarfile.TarFile:
        assert self._tar is not None, "already finished"
        return self._tar

    def _info(self, name: str, kind: bytes, *, mode: int, uid: int = 0, gid: int = 0) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = mode
        info.uid, info.gid = uid, gid
        info.mtime = self.mtime
        return info

    def dir(self, name: str, *, mode: int = 0o755, uid: int = 0, gid: int = 0,
            xattrs: dict[str, bytes] | None = None) -> None:
        self._parents(name)
        if name in self._dirs:
            return
        self._dirs.add(name)
        info = self._info(name, tarfile.DIRTYPE, mode=mode, uid=uid, gid=gid)
        self._xattrs(info, xattrs)
        self.tar.addfile(info)

    def _parents(self, name: str) -> None:
        parent = os.path.dirname(name.rstrip("/"))
        if parent and parent not in self._dirs:
            self.dir(parent)

    @staticmethod
    def _xattrs(info: tarfile.TarInfo, xattrs: dict[str, bytes] | None) -> None:
        if xattrs:
            info.pax_headers = {f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape")
                                for k, v in xattrs.items()}

    def file(self, name: str, data: bytes, *, mode: int = 0o644, uid: int = 0, gid: int = 0,
             xattrs: dict[str, bytes] | None = None) -> None:
        self._parents(name)
        info = self._info(name, tarfile.REGTYPE, mode=mode, uid=uid, gid=gid)
        info.size = len(data)
        self._xattrs(info, xattrs)
        self.tar.addfile(info, io.BytesIO(data))

    def symlink(self, name: str, target: str) -> None:
        self._parents(name)
        info = self._info(name, tarfile.SYMTYPE, mode=0o777)
        info.linkname = target
        self.tar.addfile(info)

    def hardlink(self, name: str, target: str) -> None:
        self._parents(name)
        info = self._info(name, tarfile.LNKTYPE, mode=0o644)
        info.linkname = target
        self.tar.addfile(info)

    def whiteout(self, path: str) -> None:
        """Delete `path` of a lower layer (overlay-style `.wh.` entry, as images carry them)."""
        head, tail = os.path.split(path)
        self.file(os.path.join(head, ".wh." + tail), b"", mode=0o644)

    def opaque(self, directory: str) -> None:
        """Hide everything lower layers put in `directory`."""
        self.dir(directory)
        self.file(os.path.join(directory, ".wh..wh..opq"), b"", mode=0o644)

    def host_file(self, path: str) -> None:
        """A host file at the same path; a symlink stays a symlink and its target is added too."""
        name = path.lstrip("/")
        if os.path.islink(path):
            target = os.readlink(path)
            self.symlink(name, target)
            resolved = os.path.normpath(os.path.join(os.path.dirname(path), target))
            self.host_file(resolved)
            return
        st = os.stat(path)
        self.file(name, Path(path).read_bytes(), mode=st.st_mode & 0o7777)

    def finish(self) -> bytes:
        self.tar.close()
        self._tar = None
        return self._buf.getvalue()


def host_rootfs_tar(programs: Sequence[str] = LISTING_TOOLS, *, extra: Iterable[str] = ()) -> bytes:
    """A layer holding `programs`, their shared libraries and `extra` host files, plus /tmp, /proc,
    /dev, /sys and /etc mount points so a runtime can start a container in it."""
    builder = TarBuilder()
    for name in ("tmp", "proc", "dev", "sys", "etc", "run"):
        builder.dir(name, mode=0o1777 if name == "tmp" else 0o755)
    seen: set[str] = set()
    for program in [*programs, *extra]:
        for path in [program, *(shared_libraries(program) if program in programs else [])]:
            if path not in seen:
                seen.add(path)
                builder.host_file(path)
    return builder.finish()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def write_oci_layout(root: Path, layers: Sequence[bytes], *, tag: str = "latest", compress: bool = True,
                     cmd: Sequence[str] = ("/bin/sh",), annotations: dict[str, str] | None = None) -> str:
    """An OCI image layout at `root` holding one image of `layers` (tars; gzip'd with `gzip -n`
    semantics when `compress`) for the host platform. Returns the manifest digest."""
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(data: bytes) -> str:
        digest = _digest(data)
        (blobs / digest.split(":", 1)[1]).write_bytes(data)
        return digest

    layer_descs, diff_ids = [], []
    for tar in layers:
        blob = gzip.compress(tar, compresslevel=6, mtime=0) if compress else tar
        media_type = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if compress else "")
        layer_descs.append({"mediaType": media_type, "digest": put(blob), "size": len(blob)})
        diff_ids.append(_digest(tar))
    config = json.dumps({
        "architecture": _oci_arch(), "os": "linux",
        "config": {"Cmd": list(cmd), "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }, separators=(",", ":")).encode()
    manifest: dict[str, object] = {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(config),
                   "size": len(config)},
        "layers": layer_descs,
    }
    if annotations:
        manifest["annotations"] = annotations
    manifest_bytes = json.dumps(manifest, separators=(",", ":")).encode()
    manifest_digest = put(manifest_bytes)
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (root / "index.json").write_text(json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest,
                       "size": len(manifest_bytes),
                       "annotations": {"org.opencontainers.image.ref.name": tag}}],
    }))
    return manifest_digest


def push(layout: Path, reference: str, *, tag: str = "latest", plain_http: bool = True) -> None:
    """Copy the layout's `tag` to `reference` (HOST/REPO:TAG) with skopeo, keeping digests."""
    subprocess.run(["skopeo", "copy", "--quiet", "--preserve-digests",
                    *(["--dest-tls-verify=false"] if plain_http else []),
                    f"oci:{layout}:{tag}", f"docker://{reference}"], check=True, capture_output=True, timeout=300)


# A shell script listing every path of a root filesystem with type, mode, owner, size or link
# target and, for regular files, sha256: what the lazy-pull tests compare between snapshotters.
LIST_FILES_SCRIPT = (
    "cd / && find . -xdev \\( -path ./proc -o -path ./sys -o -path ./dev \\) -prune -o -print "
    "| LC_ALL=C sort | while IFS= read -r p; do "
    "if [ -L \"$p\" ]; then echo \"$p L $(stat -c '%a %u:%g' \"$p\") -> $(readlink \"$p\")\"; "
    "elif [ -f \"$p\" ]; then echo \"$p F $(stat -c '%a %u:%g %s %h' \"$p\") $(sha256sum < \"$p\" | cut -c1-64)\"; "
    "else echo \"$p $(stat -c '%F %a %u:%g %t:%T' \"$p\")\"; fi; done"
)
