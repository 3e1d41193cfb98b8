"""Platforms as containerd parses, normalizes and matches them (`containerd/platforms`)."""

from __future__ import annotations

import platform as _host

from socikit.errors import ImageError
from socikit.oci.descriptor import Platform

_KNOWN_OS = frozenset({"aix", "android", "darwin", "dragonfly", "freebsd", "illumos", "ios", "js", "linux",
                       "netbsd", "openbsd", "plan9", "solaris", "wasip1", "windows"})


def _normalize_arch(arch: str, variant: str) -> tuple[str, str]:
    arch, variant = arch.lower(), variant.lower()
    if arch == "i386":
        return "386", ""
    if arch in ("x86_64", "x86-64", "amd64"):
        return "amd64", "" if variant == "v1" else variant
    if arch in ("aarch64", "arm64"):
        return "arm64", "" if variant in ("8", "v8") else variant
    if arch == "armhf":
        return "arm", "v7"
    if arch == "armel":
        return "arm", "v6"
    if arch == "arm":
        if variant in ("", "7"):
            return "arm", "v7"
        if variant in ("5", "6", "8"):
            return "arm", "v" + variant
        return "arm", variant
    return arch, variant


def normalize(p: Platform) -> Platform:
    """containerd's Normalize: lower-case os, canonical architecture and variant names."""
    arch, variant = _normalize_arch(p.architecture, p.variant)
    return Platform(architecture=arch, os=p.os.lower(), os_version=p.os_version, os_features=p.os_features,
                    variant=variant)


def host_platform() -> Platform:
    """The platform of this machine (what the reference defaults to for multi-platform images)."""
    return normalize(Platform(architecture=_host.machine() or "amd64", os="linux"))


def parse_platform(text: str) -> Platform:
    """Parse `os[/arch[/variant]]` (or a bare architecture) like containerd, without normalizing."""
    parts = text.strip().split("/")
    if not text.strip() or any(not part for part in parts) or len(parts) > 3:
        raise ImageError(f"invalid platform {text!r}: expected os/arch[/variant], e.g. linux/arm64")
    if len(parts) == 1:
        word = parts[0].lower()
        if word in _KNOWN_OS:
            return Platform(architecture=host_platform().architecture, os=word)
        return Platform(architecture=word, os="linux")
    return Platform(architecture=parts[1], os=parts[0], variant=parts[2] if len(parts) == 3 else "")


def matches(wanted: Platform, candidate: Platform) -> bool:
    """containerd's default matcher for one platform: same os and architecture after
    normalization; the variant must agree unless the requested one is empty."""
    w, c = normalize(wanted), normalize(candidate)
    if w.os != c.os or w.architecture != c.architecture:
        return False
    return not w.variant or w.variant == c.variant


def format_platform(p: Platform) -> str:
    return str(p)
