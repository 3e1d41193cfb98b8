"""One parser for every image reference socikit accepts (skopeo's transport syntax):

    oci:DIR[:TAG|@DIGEST]            OCI image layout directory
    oci-archive:FILE[:TAG]           tar of an OCI image layout
    docker-archive:FILE[:REF]        `docker save` output
    docker-daemon:REF                the Docker Engine's image store
    [docker://]HOST/REPO[:TAG|@DIGEST]   a registry (Docker Hub normalization for short names)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from socikit.errors import ImageReferenceError
from socikit.oci.digest import is_digest

TRANSPORTS = ("oci", "oci-archive", "docker-archive", "docker-daemon", "docker")
DOCKER_HUB = "docker.io"
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_COMPONENT_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_HOST_RE = re.compile(r"^(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:]+\])(?::[0-9]+)?$")
_FORMS = ("oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REF], docker-daemon:REF, "
          "or HOST/REPO[:TAG|@DIGEST] (optionally docker://)")


@dataclass(frozen=True, slots=True)
class ImageReference:
    transport: str  # "oci", "oci-archive", "docker-archive", "docker-daemon" or "docker" (a registry)
    path: str = ""  # oci / oci-archive / docker-archive
    host: str = ""  # registry
    repository: str = ""
    tag: str = ""
    digest: str = ""

    @property
    def is_registry(self) -> bool:
        return self.transport == "docker"

    @property
    def name(self) -> str:
        """HOST/REPO of a registry or daemon reference."""
        return f"{self.host}/{self.repository}" if self.host else self.repository

    def __str__(self) -> str:
        if self.transport in ("oci", "oci-archive", "docker-archive"):
            suffix = f"@{self.digest}" if self.digest else (f":{self.tag}" if self.tag else "")
            return f"{self.transport}:{self.path}{suffix}"
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text if self.transport == "docker" else f"docker-daemon:{text}"


def parse_docker_reference(text: str, *, transport: str = "docker") -> ImageReference:
    """`[HOST/]REPO[:TAG][@DIGEST]` with Docker's normalization (docker.io, library/, latest)."""
    if not text or text != text.strip():
        raise ImageReferenceError(f"invalid image reference {text!r}: expected {_FORMS}")
    rest, _, digest = text.partition("@")
    if digest and not is_digest(digest):
        raise ImageReferenceError(f"invalid digest in {text!r}: expected sha256:<64 hex digits>")
    first, slash, remainder = rest.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        host, path = first, remainder
        if not _HOST_RE.match(host):
            raise ImageReferenceError(f"invalid registry host {host!r} in {text!r}")
    else:
        host, path = DOCKER_HUB, rest
    name, colon, tag = path.rpartition(":") if ":" in path else (path, "", "")
    if colon and not _TAG_RE.match(tag):
        raise ImageReferenceError(f"invalid tag {tag!r} in {text!r}")
    if not colon:
        name = path
    if host == DOCKER_HUB and "/" not in name:
        name = "library/" + name
    if not name or not all(_COMPONENT_RE.match(c) for c in name.split("/")):
        raise ImageReferenceError(
            f"invalid repository name {name!r} in {text!r}: lower-case letters, digits and separators only"
        )
    if not tag and not digest:
        tag = "latest"
    return ImageReference(transport=transport, host=host, repository=name, tag=tag, digest=digest)


def _split_path(value: str, what: str) -> tuple[str, str, str]:
    """PATH[:TAG|@DIGEST] -> (path, tag, digest). A path containing ':' is not supported (as in skopeo)."""
    if not value:
        raise ImageReferenceError(f"{what} needs a path, e.g. {what}:./image:latest")
    if "@" in value:
        path, _, digest = value.rpartition("@")
        if not is_digest(digest):
            raise ImageReferenceError(f"invalid digest {digest!r} in {what}:{value}")
        return path, "", digest
    path, colon, tag = value.partition(":")
    if colon and ":" in tag:
        raise ImageReferenceError(f"{what}:{value}: paths containing ':' are not supported")
    if colon and not tag:
        raise ImageReferenceError(f"{what}:{value}: empty tag after ':'")
    return path, tag, ""


def parse_reference(text: str) -> ImageReference:
    """Parse any reference form socikit accepts; ImageReferenceError lists the forms otherwise."""
    transport, colon, rest = text.partition(":")
    if colon and transport == "docker-archive":
        path, _, ref = rest.partition(":")
        if not path:
            raise ImageReferenceError("docker-archive needs a path, e.g. docker-archive:./image.tar")
        return ImageReference(transport=transport, path=path, tag=ref)
    if colon and transport in ("oci", "oci-archive"):
        path, tag, digest = _split_path(rest, transport)
        return ImageReference(transport=transport, path=path, tag=tag, digest=digest)
    if colon and transport == "docker-daemon":
        return parse_docker_reference(rest, transport="docker-daemon")
    if text.startswith("docker://"):
        return parse_docker_reference(text[len("docker://"):])
    if colon and transport and "/" not in transport and "." not in transport and not rest[:1].isdigit() \
            and transport not in ("localhost",) and "/" not in text.split(":", 1)[0]:
        # `something:rest` where `something` is not a host (no '.', no port): either a bare
        # `name:tag` or an unknown transport.
        if "/" in rest or transport.endswith("-archive") or transport in ("dir", "containers-storage"):
            raise ImageReferenceError(f"unknown transport {transport!r} in {text!r}: use {_FORMS}")
    return parse_docker_reference(text)
