"""Platforms the way containerd's `platforms` module (v1.0.0-rc.4, the version the current SOCI
reference links) parses, normalizes, formats and matches them.

The reference records platforms in converted image indexes exactly as these functions produce
them, so the details matter for byte-identical output:

* `parse_platform` is containerd `Parse`: it already normalizes, except that a two-part `os/arm`
  drops the implied `v7` and a three-part `os/arm64/v8` keeps `v8`.
* `normalize` is containerd `Normalize` (arm64 `v8` dropped, amd64 `v1` dropped, bare `arm` gets
  `v7`, OS features sorted and de-duplicated).
* `matches` is the strict matcher (`OnlyStrict`) the reference uses to pick the manifest of a
  platform and to find an existing SOCI index entry to replace.
"""

from __future__ import annotations

import platform as _host
import re
import sys
from collections.abc import Iterable

from socikit.errors import ImageError
from socikit.oci.descriptor import Platform

# Go's `go/build` syslist, as containerd copies it (database.go).
_KNOWN_OS = frozenset({
    "aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos", "ios", "js", "linux", "nacl",
    "netbsd", "openbsd", "plan9", "solaris", "windows", "zos",
})
_KNOWN_ARCH = frozenset({
    "386", "amd64", "amd64p32", "arm", "armbe", "arm64", "arm64be", "ppc64", "ppc64le", "loong64", "mips",
    "mipsle", "mips64", "mips64le", "mips64p32", "mips64p32le", "ppc", "riscv", "riscv64", "s390", "s390x",
    "sparc", "sparc64", "wasm",
})

# Python's spelling of the host machine -> Go's GOARCH.
_GOARCH = {
    "x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "i386": "386", "i486": "386",
    "i586": "386", "i686": "386", "x86": "386", "ppc64le": "ppc64le", "ppc64": "ppc64", "s390x": "s390x",
    "riscv64": "riscv64", "loongarch64": "loong64", "mips64": "mips64", "mips": "mips",
}

# `<os>[(<os version>[+<feature>]*)]`, anchored at both ends like Go's regexp `^...$`.
_OS_RE = re.compile(r"([A-Za-z0-9_-]+)(?:\(([A-Za-z0-9_.%-]*)((?:\+[A-Za-z0-9_.%-]+)*)\))?")
_COMPONENT_RE = re.compile(r"[A-Za-z0-9_.-]+")
_HEX = frozenset("0123456789abcdefABCDEF")

# Windows builds that matter for container/host compatibility (platform_windows_compat.go).
_LTSC2022 = 20348
_COMPAT_LTSC = (20348, 26100)  # ascending


def _host_os() -> str:
    if sys.platform.startswith("linux"):
        return "linux"
    if sys.platform == "win32":
        return "windows"
    if sys.platform.startswith("freebsd"):
        return "freebsd"
    return sys.platform


def _host_arch() -> str:
    machine = (_host.machine() or "").lower()
    if machine.startswith("arm") and machine not in _GOARCH:
        return "arm"
    return _GOARCH.get(machine, machine or "amd64")


def _host_cpu_variant() -> str:
    """containerd's cpuVariant(): set only on ARM hosts (arm64 -> "v8"; 32-bit arm from the
    machine name, e.g. armv7l -> "v7")."""
    arch = _host_arch()
    if arch == "arm64":
        return "v8"
    if arch == "arm":
        match = re.match(r"armv(\d)", (_host.machine() or "").lower())
        return f"v{match.group(1)}" if match and match.group(1) in "345678" else "unknown"
    return ""


def _normalize_os(os_name: str) -> str:
    if not os_name:
        return _host_os()
    os_name = os_name.lower()
    return "darwin" if os_name == "macos" else os_name


def _normalize_arch(arch: str, variant: str) -> tuple[str, str]:
    arch, variant = arch.lower(), variant.lower()
    if arch == "i386":
        return "386", ""
    if arch in ("x86_64", "x86-64", "amd64"):
        return "amd64", "" if variant == "v1" else variant
    if arch in ("aarch64", "arm64"):
        if variant in ("8", "v8", "v8.0"):
            variant = ""
        elif variant in ("9", "9.0", "v9.0"):
            variant = "v9"
        return "arm64", variant
    if arch == "armhf":
        return "arm", "v7"
    if arch == "armel":
        return "arm", "v6"
    if arch == "arm":
        if variant in ("", "7"):
            variant = "v7"
        elif variant in ("5", "6", "8"):
            variant = "v" + variant
    return arch, variant


def normalize(p: Platform) -> Platform:
    """containerd `Normalize`: canonical OS, architecture and variant names; OS features sorted
    and de-duplicated; OS version untouched. An empty OS becomes the host's."""
    arch, variant = _normalize_arch(p.architecture, p.variant)
    return Platform(
        architecture=arch,
        os=_normalize_os(p.os),
        os_version=p.os_version,
        os_features=tuple(sorted(set(p.os_features))),
        variant=variant,
    )


def host_platform() -> Platform:
    """containerd `DefaultSpec()`: host OS and Go architecture, variant only on ARM hosts
    (arm64 hosts report `v8`). Not normalized, as the reference records it."""
    return Platform(architecture=_host_arch(), os=_host_os(), variant=_host_cpu_variant())


def _path_unescape(text: str, specifier: str) -> str:
    """Go `url.PathUnescape`: `%XX` sequences decoded, anything else kept; a bad escape is an error."""
    if "%" not in text:
        return text
    out = bytearray()
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "%":
            pair = text[i + 1:i + 3]
            if len(pair) != 2 or not set(pair) <= _HEX:
                raise ImageError(f"invalid platform {specifier!r}: bad escape {text[i:i + 3]!r}")
            out.append(int(pair, 16))
            i += 3
        else:
            out += ch.encode("utf-8")
            i += 1
    return out.decode("utf-8", "replace")


def parse_platform(text: str) -> Platform:
    """containerd `Parse` of a `--platform` value: `os[(version[+feature]*)][/arch[/variant]]`,
    or a bare OS or architecture (the other half taken from the host).

    The result is normalized the way `Parse` does it (`linux/aarch64` -> arm64, `linux/arm64/v8`
    keeps `v8`, `linux/arm64` has no variant, `linux/arm` has no variant). Raises ImageError."""
    if "*" in text:
        raise ImageError(f"invalid platform {text!r}: wildcards are not supported")
    parts = text.split("/", 3)
    os_match = _OS_RE.fullmatch(parts[0])
    if os_match is None:
        raise ImageError(
            f"invalid platform {text!r}: {parts[0]!r} is not an OS "
            "(expected os[/arch[/variant]], e.g. linux/arm64)"
        )
    for part in parts[1:]:
        if not _COMPONENT_RE.fullmatch(part):
            raise ImageError(f"invalid platform {text!r}: {part!r} must be letters, digits, '_', '.' or '-'")
    os_name = _normalize_os(os_match.group(1))
    os_version = _path_unescape(os_match.group(2) or "", text)
    features: list[str] = []
    if os_match.group(3):
        for raw in os_match.group(3)[1:].split("+"):
            feature = _path_unescape(raw.strip(), text)
            if feature:
                features.append(feature)

    def result(arch: str, os_value: str, variant: str) -> Platform:
        return Platform(architecture=arch, os=os_value, os_version=os_version, os_features=tuple(features),
                        variant=variant)

    if len(parts) == 1:
        if os_name in _KNOWN_OS:
            arch = _host_arch()
            host_variant = _host_cpu_variant()
            variant = host_variant if arch == "arm" and host_variant != "v7" else ""
            return result(arch, os_name, variant)
        arch, variant = _normalize_arch(parts[0], "")
        if arch == "arm" and variant == "v7":
            variant = ""
        if arch in _KNOWN_ARCH:
            return result(arch, _host_os(), variant)
        raise ImageError(f"invalid platform {text!r}: unknown operating system or architecture")
    if len(parts) == 2:
        arch, variant = _normalize_arch(parts[1], "")
        if arch == "arm" and variant == "v7":
            variant = ""
        return result(arch, os_name, variant)
    if len(parts) == 3:
        arch, variant = _normalize_arch(parts[1], parts[2])
        if arch == "arm64" and variant == "":
            variant = "v8"
        return result(arch, os_name, variant)
    raise ImageError(f"invalid platform {text!r}: expected at most os/arch/variant")


def _go_path_join(elements: Iterable[str]) -> str:
    """Go `path.Join`: non-empty elements joined with '/', then lexically cleaned."""
    joined = "/".join(e for e in elements if e)
    rooted = joined.startswith("/")
    out: list[str] = []
    for part in joined.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(part)
    cleaned = "/".join(out)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


def format_platform(p: Platform) -> str:
    """containerd `Format`: `os/arch[/variant]` (`unknown` when the OS is empty)."""
    if not p.os:
        return "unknown"
    return _go_path_join((p.os, p.architecture, p.variant))


def _windows_version(text: str) -> tuple[int, int, int]:
    """(major, minor, build) of a Windows `os.version`, or (0, 0, 0) when it does not parse."""
    if text.count(".") < 2:
        return (0, 0, 0)
    major, minor, rest = text.split(".", 2)
    build = rest.split(".", 1)[0]
    limits = ((major, 0xFF), (minor, 0xFF), (build, 0xFFFF))
    if not all(re.fullmatch(r"[0-9]+", s) and int(s) <= limit for s, limit in limits):
        return (0, 0, 0)
    return (int(major), int(minor), int(build))


def _windows_versions_compatible(host: str, container: str) -> bool:
    wanted = _windows_version(host)
    if wanted == (0, 0, 0) or not container:
        return True
    have = _windows_version(container)
    if wanted[:2] != have[:2]:
        return False
    if wanted[2] < _LTSC2022:
        return wanted[2] == have[2]
    oldest = _LTSC2022
    for release in reversed(_COMPAT_LTSC):
        if wanted[2] > release:
            oldest = release
            break
    return oldest <= have[2] <= wanted[2]


def matches(requested: Platform, candidate: Platform) -> bool:
    """containerd `OnlyStrict(requested).Match(candidate)`: same OS, architecture and variant after
    normalizing both (so arm64 matches arm64/v8, amd64 does not match amd64/v3); the candidate's OS
    features must be a subset of the requested ones; on Windows the OS versions must be compatible."""
    want = normalize(requested)
    candidate_features = candidate.os_features
    if want.os == "windows" and "win32k" in candidate_features:
        # Older containerd ignored win32k; the current matcher strips it from the candidate.
        features = list(candidate_features)
        features.remove("win32k")
        candidate_features = tuple(features)
    have = normalize(Platform(candidate.architecture, candidate.os, candidate.os_version, candidate_features,
                              candidate.variant))
    if (want.os, want.architecture, want.variant) != (have.os, have.architecture, have.variant):
        return False
    if want.os == "windows" and not _windows_versions_compatible(want.os_version, candidate.os_version):
        return False
    return set(have.os_features) <= set(want.os_features)


def dedupe_platforms(platforms: Iterable[Platform]) -> list[Platform]:
    """The reference's DedupePlatforms: keep the first of platforms that match each other strictly
    (e.g. `linux/arm64` and `linux/arm64/v8`), in their given order, unmodified."""
    kept: list[Platform] = []
    for p in platforms:
        if not any(matches(normalize(k), normalize(p)) for k in kept):
            kept.append(p)
    return kept
