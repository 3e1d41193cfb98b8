"""One parser for every image reference socikit accepts (skopeo's `transport:details` syntax):

    oci:DIR[:REF]                    OCI image layout directory; REF is the tag stored as the
    oci:DIR[:@DIGEST]                `org.opencontainers.image.ref.name` annotation, or a digest
    oci:DIR@DIGEST                   (older socikit spelling, still accepted)
    oci-archive:FILE[:REF]           tar of an OCI image layout
    docker-archive:FILE[:NAME:TAG]   `docker save` output; NAME:TAG picks one of its RepoTags
    docker-daemon:NAME[:TAG|@DIGEST] the Docker Engine's image store
    [docker://]NAME[:TAG|@DIGEST]    a registry

As in skopeo, DIR/FILE ends at the first ':' after the transport, so paths containing ':' are
not supported. NAME is normalized as Docker does: no registry host -> docker.io, a single
component on docker.io -> library/NAME, no tag and no digest -> tag latest. The first component
of NAME is a host when it contains '.' or ':', is `localhost`, or has upper-case letters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from socikit.errors import ImageReferenceError
from socikit.oci.digest import is_digest

TRANSPORTS = ("oci", "oci-archive", "docker-archive", "docker-daemon", "docker")
PATH_TRANSPORTS = ("oci", "oci-archive", "docker-archive")
DOCKER_HUB = "docker.io"
DEFAULT_TAG = "latest"
# Transports skopeo knows that socikit does not implement: named in the error instead of
# being misread as a registry host.
_OTHER_TRANSPORTS = ("dir", "containers-storage", "ostree", "sif", "tarball", "docker-tar")
_HUB_ALIASES = ("index.docker.io", "registry-1.docker.io")

_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_COMPONENT_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_HOST_RE = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
                      r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?$")
# An `org.opencontainers.image.ref.name` value: the image-spec grammar (alphanumerics joined by
# - . _ : @ + or "--", components separated by '/'), loosened to allow '_' like Docker tags.
_OCI_REF_COMPONENT = r"[A-Za-z0-9_]+(?:(?:[-._:@+]|--)[A-Za-z0-9_]+)*"
_OCI_REF_RE = re.compile(rf"^{_OCI_REF_COMPONENT}(?:/{_OCI_REF_COMPONENT})*$")
_TRAILING_DIGEST_RE = re.compile(r"^(?P<path>.+)@(?P<digest>[A-Za-z0-9_+.-]+:[0-9a-fA-F]+)$")
_WORD_RE = re.compile(r"^[a-z][a-z0-9-]*$")
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_MAX_NAME = 255
# A reference that starts like a file system path was meant as one (no image name starts so).
_PATH_PREFIXES = ("/", "./", "../", "~")

FORMS = (
    "oci:DIR[:TAG], oci:DIR@DIGEST, oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG], "
    "docker-daemon:NAME[:TAG|@DIGEST], or [docker://]HOST/REPO[:TAG|@DIGEST]"
)


@dataclass(frozen=True, slots=True)
class ImageReference:
    """A parsed image reference. Which fields are set depends on `transport`:

    - "oci", "oci-archive": `path`, and `tag` or `digest` (or neither: the only image);
    - "docker-archive": `path`, and optionally `host`/`repository`/`tag` naming a RepoTag;
    - "docker-daemon", "docker" (a registry): `host`, `repository`, and `tag` and/or `digest`
      (`tag` is "latest" when neither was given).
    """

    transport: str
    path: str = ""
    host: str = ""
    repository: str = ""
    tag: str = ""
    digest: str = ""

    @property
    def is_registry(self) -> bool:
        return self.transport == "docker"

    @property
    def name(self) -> str:
        """HOST/REPO of a registry, daemon or docker-archive reference ("" when there is none)."""
        return f"{self.host}/{self.repository}" if self.host else self.repository

    @property
    def docker_reference(self) -> str:
        """NAME[:TAG][@DIGEST] in fully qualified form, as Docker and registries take it."""
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def __str__(self) -> str:
        if self.transport in ("oci", "oci-archive"):
            suffix = f"@{self.digest}" if self.digest else (f":{self.tag}" if self.tag else "")
            return f"{self.transport}:{self.path}{suffix}"
        if self.transport == "docker-archive":
            return f"docker-archive:{self.path}:{self.docker_reference}" if self.repository else \
                f"docker-archive:{self.path}"
        if self.transport == "docker-daemon":
            return f"docker-daemon:{self.docker_reference}"
        return self.docker_reference


def parse_docker_reference(text: str, *, transport: str = "docker") -> ImageReference:
    """`[HOST/]REPO[:TAG][@DIGEST]` with Docker's normalization (docker.io, library/, latest)."""
    if not text or text != text.strip() or any(ch.isspace() for ch in text):
        raise ImageReferenceError(f"invalid image reference {text!r}: expected {FORMS}")
    rest, at, digest = text.partition("@")
    if at and not is_digest(digest):
        raise ImageReferenceError(f"invalid digest {digest!r} in {text!r}: expected sha256:<64 lower-case hex digits>")
    first, slash, remainder = rest.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        host, path = first, remainder
        if not _HOST_RE.match(host):
            raise ImageReferenceError(f"invalid registry host {host!r} in {text!r}")
        if host in _HUB_ALIASES:
            host = DOCKER_HUB
    else:
        host, path = DOCKER_HUB, rest
    name, colon, tag = path.rpartition(":")
    if not colon:
        name, tag = path, ""
    elif not _TAG_RE.match(tag):
        raise ImageReferenceError(
            f"invalid tag {tag!r} in {text!r}: up to 128 letters, digits, '_', '.', '-' (not starting with '.' or '-')"
        )
    if host == DOCKER_HUB and name and "/" not in name:
        name = "library/" + name
    if not name or not all(_COMPONENT_RE.match(c) for c in name.split("/")):
        raise ImageReferenceError(
            f"invalid repository name {name!r} in {text!r}: lower-case letters, digits and separators "
            "('.', '_', '__', '-') between '/'-separated components"
        )
    if len(host) + 1 + len(name) > _MAX_NAME:
        raise ImageReferenceError(f"repository name in {text!r} is longer than {_MAX_NAME} characters")
    if not tag and not digest:
        tag = DEFAULT_TAG
    return ImageReference(transport=transport, host=host, repository=name, tag=tag, digest=digest)


def _need_path(transport: str, path: str, example: str) -> None:
    if not path:
        raise ImageReferenceError(f"{transport}: needs a path, e.g. {transport}:{example}")


def _parse_oci(transport: str, value: str) -> ImageReference:
    """DIR[:REF|:@DIGEST] or DIR@DIGEST; the path ends at the first ':' (skopeo's rule)."""
    example = "./image:latest" if transport == "oci" else "./image.tar:latest"
    trailing = _TRAILING_DIGEST_RE.match(value)
    if trailing and ":" not in trailing["path"]:
        path, digest = trailing["path"], trailing["digest"]
        if not is_digest(digest):
            raise ImageReferenceError(f"invalid digest {digest!r} in {transport}:{value}: expected sha256:<64 hex>")
        return ImageReference(transport=transport, path=path, digest=digest)
    path, colon, ref = value.partition(":")
    _need_path(transport, path, example)
    if not colon:
        return ImageReference(transport=transport, path=path)
    if not ref:
        raise ImageReferenceError(f"{transport}:{value}: empty tag after ':' (omit the ':' to use the only image)")
    if ref.startswith("@"):
        if not is_digest(ref[1:]):
            raise ImageReferenceError(f"invalid digest {ref[1:]!r} in {transport}:{value}: expected sha256:<64 hex>")
        return ImageReference(transport=transport, path=path, digest=ref[1:])
    if not _OCI_REF_RE.match(ref):
        hint = " (paths containing ':' are not supported)" if "/" in ref or ref.startswith(".") else ""
        raise ImageReferenceError(
            f"invalid tag {ref!r} in {transport}:{value}: letters, digits and - . _ : @ + / between them{hint}"
        )
    return ImageReference(transport=transport, path=path, tag=ref)


def _parse_docker_archive(value: str) -> ImageReference:
    """FILE[:NAME[:TAG]]: the path ends at the first ':'; the rest names one of the RepoTags."""
    path, colon, ref = value.partition(":")
    _need_path("docker-archive", path, "./image.tar")
    if not colon:
        return ImageReference(transport="docker-archive", path=path)
    if not ref:
        raise ImageReferenceError(f"docker-archive:{value}: empty image name after ':'")
    parsed = parse_docker_reference(ref, transport="docker-archive")
    if parsed.digest:
        raise ImageReferenceError(
            f"docker-archive:{value}: a docker-archive image is named by NAME:TAG, not by digest"
        )
    return ImageReference(transport="docker-archive", path=path, host=parsed.host,
                          repository=parsed.repository, tag=parsed.tag)


def parse_reference(text: str) -> ImageReference:
    """Parse any reference form socikit accepts; ImageReferenceError names the accepted forms."""
    if not isinstance(text, str) or not text:
        raise ImageReferenceError(f"empty image reference: expected {FORMS}")
    if text.startswith("docker://"):
        return parse_docker_reference(text[len("docker://"):])
    if text.startswith(_PATH_PREFIXES) or text in (".", ".."):
        raise ImageReferenceError(
            f"{text!r} is a path, not an image reference: an OCI image layout directory is written "
            f"oci:{text}, an OCI archive oci-archive:{text}"
        )
    if _SCHEME_RE.match(text):
        scheme = text.split(":", 1)[0]
        raise ImageReferenceError(f"unsupported transport {scheme + '://'!r} in {text!r}: use {FORMS}")
    prefix, colon, rest = text.partition(":")
    if colon:
        if prefix in ("oci", "oci-archive"):
            return _parse_oci(prefix, rest)
        if prefix == "docker-archive":
            return _parse_docker_archive(rest)
        if prefix == "docker-daemon":
            if not rest:
                raise ImageReferenceError("docker-daemon: needs an image name, e.g. docker-daemon:busybox:latest")
            return parse_docker_reference(rest, transport="docker-daemon")
        if prefix in _OTHER_TRANSPORTS:
            raise ImageReferenceError(f"transport {prefix!r} is not supported by socikit: use {FORMS}")
        # `word:rest` is a registry reference (NAME:TAG, HOST:PORT/...) unless `rest` reads as a
        # path: then `word` was meant as a transport socikit does not know.
        if _WORD_RE.match(prefix) and "/" in rest and not re.match(r"^[0-9]+/", rest):
            hint = " (a registry is written docker://HOST/REPO)" if prefix == "docker" else ""
            raise ImageReferenceError(f"unknown transport {prefix!r} in {text!r}{hint}: use {FORMS}")
    return parse_docker_reference(text)


__all__ = ["DOCKER_HUB", "FORMS", "ImageReference", "TRANSPORTS", "parse_docker_reference", "parse_reference"]
