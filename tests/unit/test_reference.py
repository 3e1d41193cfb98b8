"""Image reference parsing: every transport, Docker normalization, and the errors for bad input."""

from __future__ import annotations

import pytest

from socikit.content.reference import ImageReference, parse_reference
from socikit.errors import ImageError, ImageReferenceError

DIGEST = "sha256:" + "ab" * 32

VALID = [
    # OCI layouts: the path ends at the first ':'; the rest is the ref.name (may hold ':' '/' '@').
    ("oci:./image", ImageReference("oci", path="./image")),
    ("oci:./image:latest", ImageReference("oci", path="./image", tag="latest")),
    ("oci:/abs/dir:v1.2_rc-3", ImageReference("oci", path="/abs/dir", tag="v1.2_rc-3")),
    ("oci:dir:example.com/app:1", ImageReference("oci", path="dir", tag="example.com/app:1")),
    (f"oci:dir@{DIGEST}", ImageReference("oci", path="dir", digest=DIGEST)),
    (f"oci:dir:@{DIGEST}", ImageReference("oci", path="dir", digest=DIGEST)),
    ("oci-archive:img.tar", ImageReference("oci-archive", path="img.tar")),
    ("oci-archive:out/img.tar:v2", ImageReference("oci-archive", path="out/img.tar", tag="v2")),
    (f"oci-archive:img.tar@{DIGEST}", ImageReference("oci-archive", path="img.tar", digest=DIGEST)),
    # docker-archive: NAME:TAG is normalized like any Docker reference.
    ("docker-archive:save.tar", ImageReference("docker-archive", path="save.tar")),
    ("docker-archive:save.tar:busybox",
     ImageReference("docker-archive", path="save.tar", host="docker.io", repository="library/busybox", tag="latest")),
    ("docker-archive:save.tar:example.com/app:1",
     ImageReference("docker-archive", path="save.tar", host="example.com", repository="app", tag="1")),
    # docker-daemon
    ("docker-daemon:busybox",
     ImageReference("docker-daemon", host="docker.io", repository="library/busybox", tag="latest")),
    ("docker-daemon:localhost:5000/a/b:t",
     ImageReference("docker-daemon", host="localhost:5000", repository="a/b", tag="t")),
    (f"docker-daemon:alpine@{DIGEST}",
     ImageReference("docker-daemon", host="docker.io", repository="library/alpine", digest=DIGEST)),
    # registries, with and without docker://
    ("busybox", ImageReference("docker", host="docker.io", repository="library/busybox", tag="latest")),
    ("busybox:1.36", ImageReference("docker", host="docker.io", repository="library/busybox", tag="1.36")),
    ("docker://busybox", ImageReference("docker", host="docker.io", repository="library/busybox", tag="latest")),
    ("user/app", ImageReference("docker", host="docker.io", repository="user/app", tag="latest")),
    ("docker.io/busybox", ImageReference("docker", host="docker.io", repository="library/busybox", tag="latest")),
    ("index.docker.io/user/app:x", ImageReference("docker", host="docker.io", repository="user/app", tag="x")),
    ("localhost/app", ImageReference("docker", host="localhost", repository="app", tag="latest")),
    ("localhost:5000/app:1", ImageReference("docker", host="localhost:5000", repository="app", tag="1")),
    ("127.0.0.1:5000/ns/app", ImageReference("docker", host="127.0.0.1:5000", repository="ns/app", tag="latest")),
    ("myhost:5000/app", ImageReference("docker", host="myhost:5000", repository="app", tag="latest")),
    ("[::1]:5000/app", ImageReference("docker", host="[::1]:5000", repository="app", tag="latest")),
    ("Registry/app", ImageReference("docker", host="Registry", repository="app", tag="latest")),
    ("ghcr.io/o/r/deep/name:tag", ImageReference("docker", host="ghcr.io", repository="o/r/deep/name", tag="tag")),
    (f"ghcr.io/o/r@{DIGEST}", ImageReference("docker", host="ghcr.io", repository="o/r", digest=DIGEST)),
    (f"ghcr.io/o/r:t@{DIGEST}", ImageReference("docker", host="ghcr.io", repository="o/r", tag="t", digest=DIGEST)),
    ("docker://example.com:443/a_b/c--d:1",
     ImageReference("docker", host="example.com:443", repository="a_b/c--d", tag="1")),
    ("docker:latest", ImageReference("docker", host="docker.io", repository="library/docker", tag="latest")),
]


@pytest.mark.parametrize(("text", "expected"), VALID, ids=[t for t, _ in VALID])
def test_valid_references(text: str, expected: ImageReference) -> None:
    assert parse_reference(text) == expected


INVALID = [
    ("", "expected"),
    ("oci:", "needs a path"),
    ("oci::tag", "needs a path"),
    ("oci:dir:", "empty tag"),
    ("oci:/tmp/a:b/c:/x", "paths containing ':' are not supported"),
    ("oci:dir:bad tag", "invalid tag"),
    ("oci:dir@sha256:1234", "invalid digest"),
    ("oci:dir:@sha256:1234", "invalid digest"),
    ("oci-archive:", "needs a path"),
    ("docker-archive:", "needs a path"),
    (f"docker-archive:x.tar:app@{DIGEST}", "not by digest"),
    ("docker-archive:x.tar:", "empty image name"),
    ("docker-daemon:", "needs an image name"),
    ("docker-daemon:UPPER/Case", "invalid repository name"),
    ("Busybox", "invalid repository name"),
    ("busybox:bad!tag", "invalid tag"),
    ("busybox:.hidden", "invalid tag"),
    ("busybox@sha256:xyz", "invalid digest"),
    ("busybox@md5:0123", "invalid digest"),
    ("example.com/", "invalid repository name"),
    ("exa_mple.com/app", "invalid registry host"),
    ("a b", "expected"),
    (" busybox", "expected"),
    ("dir:/tmp/x", "not supported by socikit"),
    ("containers-storage:busybox", "not supported by socikit"),
    ("ftp://host/x", "unsupported transport"),
    ("https://example.com/app", "unsupported transport"),
    ("foo:/some/path", "unknown transport 'foo'"),
    ("docker:/x", "docker://HOST/REPO"),
    ("example.com/" + "a" * 260, "longer than 255"),
]


@pytest.mark.parametrize(("text", "message"), INVALID, ids=[t or "<empty>" for t, _ in INVALID])
def test_invalid_references(text: str, message: str) -> None:
    with pytest.raises(ImageReferenceError) as info:
        parse_reference(text)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_error_lists_accepted_forms_and_is_an_image_error() -> None:
    with pytest.raises(ImageError) as info:
        parse_reference("foo:/x")
    for form in ("oci:DIR", "oci-archive:FILE", "docker-archive:FILE", "docker-daemon:NAME", "HOST/REPO"):
        assert form in str(info.value)


@pytest.mark.parametrize(
    ("text", "rendered"),
    [
        ("oci:./image:latest", "oci:./image:latest"),
        (f"oci:dir:@{DIGEST}", f"oci:dir@{DIGEST}"),
        ("oci-archive:a.tar", "oci-archive:a.tar"),
        ("docker-archive:a.tar", "docker-archive:a.tar"),
        ("docker-archive:a.tar:busybox", "docker-archive:a.tar:docker.io/library/busybox:latest"),
        ("docker-daemon:busybox", "docker-daemon:docker.io/library/busybox:latest"),
        ("busybox", "docker.io/library/busybox:latest"),
        ("docker://localhost:5000/a:1", "localhost:5000/a:1"),
        (f"ghcr.io/o/r:t@{DIGEST}", f"ghcr.io/o/r:t@{DIGEST}"),
    ],
)
def test_str_is_canonical_and_reparses(text: str, rendered: str) -> None:
    ref = parse_reference(text)
    assert str(ref) == rendered
    assert parse_reference(str(ref)) == ref


def test_reference_is_frozen_and_hashable() -> None:
    ref = parse_reference("busybox")
    with pytest.raises(AttributeError):
        ref.tag = "x"  # type: ignore[misc]
    assert {ref, parse_reference("docker.io/library/busybox:latest")} == {ref}
    assert ref.is_registry and ref.name == "docker.io/library/busybox"
    assert ref.docker_reference == "docker.io/library/busybox:latest"
