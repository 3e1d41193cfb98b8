#!/usr/bin/env python3
"""Make a base image for docker/Dockerfile without any registry: a root filesystem tar holding
this machine's own CPython (installed under /usr/local, as the official python images have it),
socikit's runtime dependencies and pip from this interpreter's site-packages, a shell and the few
programs the Dockerfile's RUN step uses, and every shared library all of those load (`ldd`).

    python3 scripts/make_builder_base.py base.tar
    docker import --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' base.tar socikit-base:offline
    docker build --network none --build-arg BASE_IMAGE=socikit-base:offline -f docker/Dockerfile CONTEXT

With network access use the default base (python:3.11-slim) instead; see docs/ci.md. The running
interpreter must be the CPython the image should have, with socikit's dependencies installed.
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import os
import re
import subprocess
import sys
import sysconfig
import tarfile
import tomllib
from collections.abc import Iterable
from pathlib import Path

from packaging.requirements import Requirement

REPO_ROOT = Path(__file__).resolve().parent.parent
PREFIX = "/usr/local"
# Programs the Dockerfile runs besides Python (`RUN mkdir ... && chown ...`).
PROGRAMS = ("/bin/sh", "/bin/mkdir", "/bin/chown", "/bin/rm", "/bin/ls", "/usr/bin/id")
# Standard-library parts a command-line tool never imports.
STDLIB_SKIP = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "site-packages",
               "dist-packages", "__phello__"}
EXTRA_DISTRIBUTIONS = ("pip",)  # to install socikit's wheel in the Dockerfile
BUILDER_UID = 65532
_LDD_PATH = re.compile(r"(/\S+) \(0x[0-9a-f]+\)")


def shared_libraries(path: str) -> list[str]:
    out = subprocess.run(["ldd", path], capture_output=True, text=True, check=False).stdout
    return sorted({m.group(1) for m in _LDD_PATH.finditer(out)})


def runtime_distributions(pyproject: Path) -> list[metadata.Distribution]:
    """socikit's dependencies (from its pyproject.toml) and theirs, as installed here; socikit's
    own distribution is left out (its wheel is installed by the Dockerfile)."""
    wanted = list(tomllib.loads(pyproject.read_text())["project"]["dependencies"]) + list(EXTRA_DISTRIBUTIONS)
    seen: dict[str, metadata.Distribution] = {}
    while wanted:
        requirement = Requirement(wanted.pop())
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        key = re.sub(r"[-_.]+", "-", requirement.name).lower()
        if key in seen:
            continue
        try:
            dist = metadata.distribution(requirement.name)
        except metadata.PackageNotFoundError:
            sys.exit(f"{requirement.name} is not installed for {sys.executable}: pip install it first")
        seen[key] = dist
        wanted += list(dist.requires or ())
    return list(seen.values())


class RootfsTar:
    """A tar of host files at chosen paths; parent directories are added once, mode 0755."""

    def __init__(self, path: Path) -> None:
        self.tar = tarfile.open(path, "w", format=tarfile.PAX_FORMAT)
        self.names: set[str] = set()

    def directory(self, name: str, mode: int = 0o755, uid: int = 0) -> None:
        name = name.strip("/")
        if not name or name in self.names:
            return
        self.directory(os.path.dirname(name))
        info = tarfile.TarInfo(name)
        info.type = tarfile.DIRTYPE
        info.mode = mode
        info.uid = info.gid = uid
        self.names.add(name)
        self.tar.addfile(info)

    def text(self, name: str, data: str, mode: int = 0o644) -> None:
        import io

        name = name.strip("/")
        self.directory(os.path.dirname(name))
        info = tarfile.TarInfo(name)
        info.size = len(data.encode())
        info.mode = mode
        self.names.add(name)
        self.tar.addfile(info, io.BytesIO(data.encode()))

    def host_file(self, source: str, name: str | None = None) -> None:
        """`source` at `name` (default: the same path); a symlink is kept with its target added."""
        name = (name or source).strip("/")
        if name in self.names:
            return
        self.directory(os.path.dirname(name))
        if os.path.islink(source):
            target = os.readlink(source)
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            self.names.add(name)
            self.tar.addfile(info)
            if name == source.strip("/"):  # a link at its host path: bring its target along
                self.host_file(os.path.normpath(os.path.join(os.path.dirname(source), target)))
            return
        info = self.tar.gettarinfo(source, arcname=name)
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        self.names.add(name)
        with open(source, "rb") as handle:
            self.tar.addfile(info, handle)

    def close(self) -> None:
        self.tar.close()


def _stdlib_files(stdlib: Path) -> Iterable[Path]:
    for root, dirs, files in os.walk(stdlib):
        rel = Path(root).relative_to(stdlib)
        dirs[:] = sorted(d for d in dirs if not (rel == Path(".") and (d in STDLIB_SKIP or d.startswith("config-"))))
        for name in sorted(files):
            if ("__pycache__" in rel.parts and ".opt-" in name) or name.startswith("_tkinter"):
                continue
            yield Path(root) / name


def build(output: Path, pyproject: Path) -> None:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    stdlib = Path(sysconfig.get_path("stdlib"))
    site = Path(sysconfig.get_path("purelib"))
    binary = os.path.realpath(sys.executable)
    tar = RootfsTar(output)
    libraries: set[str] = set()
    for name, mode in (("tmp", 0o1777), ("proc", 0o755), ("dev", 0o755), ("sys", 0o755), ("run", 0o755),
                       ("root", 0o700), ("home", 0o755)):
        tar.directory(name, mode)
    tar.text("/etc/passwd", f"root:x:0:0:root:/root:/bin/sh\nsocikit:x:{BUILDER_UID}:{BUILDER_UID}:socikit:"
                            f"/home/socikit:/bin/sh\n")
    tar.text("/etc/group", f"root:x:0:\nsocikit:x:{BUILDER_UID}:\n")

    # The interpreter: /usr/local/bin/pythonX.Y, its libpython beside the C library, which the
    # dynamic loader searches without any configuration.
    tar.host_file(binary, f"{PREFIX}/bin/{version}")
    tar.tar.addfile(_symlink(f"{PREFIX}/bin/python3", version))
    tar.tar.addfile(_symlink(f"{PREFIX}/bin/python", version))
    libc_dir = next(os.path.dirname(p) for p in shared_libraries(binary) if os.path.basename(p).startswith("libc.so"))
    for lib in shared_libraries(binary):
        if "libpython" in os.path.basename(lib):
            tar.host_file(os.path.realpath(lib), f"{libc_dir}/{os.path.basename(lib)}")
        else:
            libraries.add(lib)

    for path in _stdlib_files(stdlib):
        tar.host_file(str(path), f"{PREFIX}/lib/{version}/{path.relative_to(stdlib)}")
        if path.suffix == ".so":
            libraries.update(shared_libraries(str(path)))
    for dist in runtime_distributions(pyproject):
        for file in dist.files or ():
            located = Path(str(dist.locate_file(file)))
            try:
                rel = located.resolve().relative_to(site.resolve())
            except ValueError:
                continue  # console scripts and data outside site-packages
            if not located.is_file():
                continue
            tar.host_file(str(located), f"{PREFIX}/lib/{version}/site-packages/{rel}")
            if located.suffix == ".so" or ".so." in located.name:
                libraries.update(shared_libraries(str(located)))
    for program in PROGRAMS:
        tar.host_file(program)
        libraries.update(shared_libraries(os.path.realpath(program)))
    for lib in sorted(libraries):
        if "libpython" not in os.path.basename(lib):
            tar.host_file(lib)
    tar.close()


def _symlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name.strip("/"))
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", type=Path, help="the root filesystem tar to write")
    parser.add_argument("--pyproject", type=Path, default=REPO_ROOT / "pyproject.toml",
                        help="socikit's pyproject.toml (its dependencies go into the image)")
    args = parser.parse_args()
    build(args.output, args.pyproject)


if __name__ == "__main__":
    main()
