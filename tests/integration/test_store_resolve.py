# ruff: noqa: F811  (pytest fixtures imported by name)
"""The store's registry resolution (socikit.store.resolve) against Debian's docker-registry: from
a lookup (reference, digest) to the layer served and its `info`, for SOCI v2 and v1 images, images
without an index, moved tags, mirrors, registries that need credentials, and served keys answered
again from the records on disk (a restart) with the registry gone."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from socikit.cli import app
from socikit.errors import AuthError, RegistryError
from socikit.registry.client import RegistryClient
from socikit.store.config import parse_config
from socikit.store.difftree import SYNTHESIZED_ROOT_MODE
from socikit.store.layout import LayerForm, LayerKey
from socikit.store.resolve import FAILURE_TTL_S, Resolver
from tests import images
from tests.integration.podman_fixtures import RecordingProxy, SociImage, build_soci_image, resolver_for
from tests.integration.registry_fixtures import (  # noqa: F401
    TEST_PASSWORD,
    TEST_USER,
    RegistryServer,
    registry,
    registry_factory,
)

pytestmark = [pytest.mark.integration, pytest.mark.registry]


@pytest.fixture(scope="module")
def image(registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory) -> SociImage:
    return build_soci_image(registry, tmp_path_factory.mktemp("resolve-image"), "resolve/app")


def _convert(*args: str) -> None:
    result = CliRunner().invoke(app, ["convert", "--span-size", "65536", "--plain-http", "--no-cache",
                                      "--progress", "none", *args])
    assert result.exit_code == 0, result.output


def test_every_indexed_layer_is_served_with_its_info(registry: RegistryServer, image: SociImage) -> None:
    ref = image.ref(registry.host, "soci")
    with resolver_for(registry.host) as resolver:
        resolved = resolver.image(ref)
        assert resolved.index_digest is not None
        assert [layer.digest for layer in resolved.layers.served] == list(image.layer_digests)
        for digest, blob, diff_id, tar in zip(image.layer_digests, image.blobs, image.diff_ids, image.tars,
                                              strict=True):
            served = resolver.layer(LayerKey(ref, digest))
            assert served is not None and served.form is LayerForm.BLOB_DIGEST and not served.restored
            assert json.loads(served.info) == {"compressed-diff-digest": digest, "compressed-size": len(blob),
                                               "diff-digest": diff_id, "diff-size": len(tar), "compression": 2}
            assert served.ztoc.compressed_archive_size == len(blob)
            # the same layer by its TOC digest (podman >= 5.1, CRI-O)
            by_toc = resolver.layer(LayerKey(ref, served.layer.toc_digest))
            assert by_toc is not None and by_toc.form is LayerForm.TOC_DIGEST and by_toc.layer == served.layer
            assert json.loads(by_toc.info) == {"diff-size": -1, "compression": 2,
                                               "toc-digest": served.layer.toc_digest,
                                               "flags": {"expected-layer-diffid": diff_id}}
            assert served.repository.read_range(digest, 0, 10) == blob[:10]
        # the image was fetched once: manifest list, manifest, SOCI index; config and three ztocs;
        # a gzip trailer per layer (and the three 10-byte reads above)
        traffic = resolver.traffic.snapshot()
        assert resolver.images_resolved == 1
        assert (traffic["manifests"], traffic["blobs"], traffic["ranges"]) == (3, 4, 6)


def test_a_layer_root_without_its_own_entry_shows_0555(registry: RegistryServer, image: SociImage) -> None:
    ref = image.ref(registry.host, "soci")
    with resolver_for(registry.host) as resolver:
        for digest in image.layer_digests:
            served = resolver.layer(LayerKey(ref, digest))
            assert served is not None
            assert served.tree.index.is_synthesized(0)  # the test image's tars have no `./` entry
            assert served.tree.attributes(0).mode & 0o7777 == SYNTHESIZED_ROOT_MODE


def test_a_digest_reference_shares_the_resolution_of_its_tag(registry: RegistryServer, image: SociImage) -> None:
    with resolver_for(registry.host) as resolver:
        tag = image.ref(registry.host, "soci")
        by_tag = resolver.layer(LayerKey(tag, image.layer_digests[1]))
        with RegistryClient(registry.host, plain_http=True) as client:
            index_digest = client.resolve(image.repository, "soci").digest
        pinned = f"{registry.host}/{image.repository}@{index_digest}"
        by_digest = resolver.layer(LayerKey(pinned, image.layer_digests[1]))
        assert by_tag is not None and by_digest is not None
        assert by_digest.key.reference == pinned and by_digest.info == by_tag.info
        traffic = resolver.traffic.snapshot()
        assert traffic["blobs"] == 4  # the config and the ztocs were not fetched again
        assert traffic["manifests"] == 3 + 2  # the digest's index and platform manifest


def test_what_is_not_served(registry: RegistryServer, image: SociImage) -> None:
    with resolver_for(registry.host) as resolver:
        plain = image.ref(registry.host, "plain")
        assert resolver.image(plain).index_digest is None
        assert all(resolver.layer(LayerKey(plain, d)) is None for d in image.layer_digests)
        soci = image.ref(registry.host, "soci")
        assert resolver.layer(LayerKey(soci, "sha256:" + "00" * 32)) is None  # not a layer of the image
        with pytest.raises(RegistryError):
            resolver.layer(LayerKey(image.ref(registry.host, "no-such-tag"), image.layer_digests[0]))


def test_layers_below_the_size_threshold_are_left_to_podman(registry: RegistryServer, image: SociImage) -> None:
    small = f"{registry.host}/resolve/small:soci"
    _convert("--min-layer-size", "20000", image.ref(registry.host, "plain"), small)
    with resolver_for(registry.host) as resolver:
        served = [d for d in image.layer_digests if resolver.layer(LayerKey(small, d)) is not None]
    assert served == [d for d, blob in zip(image.layer_digests, image.blobs, strict=True) if len(blob) >= 20000]
    assert 0 < len(served) < len(image.layer_digests)


def test_soci_v1_only_when_enabled(registry: RegistryServer, image: SociImage) -> None:
    v1 = f"{registry.host}/resolve/v1:soci"
    _convert("--v1", "--min-layer-size", "0", image.ref(registry.host, "plain"), v1)
    key = LayerKey(v1, image.layer_digests[0])
    with resolver_for(registry.host) as default:
        assert default.layer(key) is None
    with resolver_for(registry.host, v1=True) as enabled:
        served = enabled.layer(key)
        assert served is not None and enabled.traffic.snapshot()["referrers"] >= 1


def test_an_uncompressed_layer(registry: RegistryServer, tmp_path: Path) -> None:
    tar = images.host_rootfs_tar(("/bin/sh",))
    images.write_oci_layout(tmp_path / "layout", [tar], compress=False)
    ref = f"{registry.host}/resolve/raw:soci"
    _convert("--min-layer-size", "0", f"oci:{tmp_path / 'layout'}:latest", ref)
    with resolver_for(registry.host) as resolver:
        (layer,) = resolver.image(ref).layers.served
        served = resolver.layer(LayerKey(ref, layer.digest))
        assert served is not None
        assert json.loads(served.info) == {"compressed-diff-digest": layer.digest, "compressed-size": len(tar),
                                           "diff-digest": layer.diff_id, "diff-size": len(tar), "compression": 0}


def test_a_moved_tag_is_resolved_again(registry: RegistryServer, image: SociImage, tmp_path: Path) -> None:
    ref = f"{registry.host}/resolve/moving:soci"
    _convert("--min-layer-size", "0", image.ref(registry.host, "plain"), ref)
    now = [0.0]
    with resolver_for(registry.host, clock=lambda: now[0]) as resolver:
        assert resolver.layer(LayerKey(ref, image.layer_digests[0])) is not None
        other = images.TarBuilder()
        other.file("moved.txt", b"the tag moved")
        images.write_oci_layout(tmp_path / "moved", [images.host_rootfs_tar(("/bin/sh",)), other.finish()])
        _convert("--min-layer-size", "0", f"oci:{tmp_path / 'moved'}:latest", ref)
        moved = json.loads((tmp_path / "moved" / "index.json").read_text())["manifests"][0]["digest"]
        manifest = json.loads((tmp_path / "moved" / "blobs" / "sha256" / moved.split(":")[1]).read_bytes())
        new_top = manifest["layers"][1]["digest"]
        # within REFRESH_AFTER_S of the last resolution the cached image answers
        assert resolver.layer(LayerKey(ref, new_top)) is None
        now[0] = 5.0
        served = resolver.layer(LayerKey(ref, new_top))
        assert served is not None and resolver.images_resolved == 2
        # a layer served before the move is still served under its key
        assert resolver.layer(LayerKey(ref, image.layer_digests[0])) is not None


def test_a_failed_resolution_is_remembered_for_a_while(registry: RegistryServer, image: SociImage) -> None:
    proxy = RecordingProxy(registry)
    now = [0.0]
    missing = f"{proxy.host}/{image.repository}:not-yet"
    try:
        with resolver_for(proxy.host, clock=lambda: now[0]) as resolver:
            for _ in range(3):
                with pytest.raises(RegistryError):
                    resolver.layer(LayerKey(missing, image.layer_digests[0]))
            assert sum("/manifests/not-yet" in line for line in proxy.seen) == 1
            _convert("--min-layer-size", "0", image.ref(registry.host, "plain"), image.ref(registry.host, "not-yet"))
            now[0] = FAILURE_TTL_S - 0.5
            with pytest.raises(RegistryError):
                resolver.layer(LayerKey(missing, image.layer_digests[0]))
            now[0] = FAILURE_TTL_S
            assert resolver.layer(LayerKey(missing, image.layer_digests[0])) is not None
    finally:
        proxy.stop()


def test_served_keys_are_answered_from_disk_after_a_restart(registry_factory: Callable[..., RegistryServer],
                                                            registry: RegistryServer, image: SociImage,
                                                            tmp_path: Path) -> None:
    """A second resolver over the same state (a restarted store) answers every key the first one
    served, both forms, with the registry stopped; a key it never served is not answered."""
    own = registry_factory()
    ref = f"{own.host}/{image.repository}:soci"
    _convert("--min-layer-size", "0", image.ref(registry.host, "plain"), ref)
    config = parse_config(f'[resolver.host."{own.host}"]\nplain_http = true\n')
    first = Resolver(config, state=tmp_path / "state")
    before = {}
    for digest in image.layer_digests[:2]:
        served = first.layer(LayerKey(ref, digest))
        assert served is not None
        by_toc = first.layer(LayerKey(ref, served.layer.toc_digest))
        assert by_toc is not None
        before[digest] = served
        before[by_toc.key.digest] = by_toc
    first.close()
    own.stop()
    again = Resolver(config, state=tmp_path / "state")
    for digest, served in before.items():
        restored = again.layer(LayerKey(ref, digest))
        assert restored is not None and restored.restored
        assert (restored.info, restored.layer, restored.form) == (served.info, served.layer, served.form)
        assert restored.tree.attributes(0) == served.tree.attributes(0)
        assert restored.ztoc.toc == served.ztoc.toc
    assert again.traffic.snapshot()["manifests"] == 0
    # the third layer was never served: the registry is asked, and it is down
    with pytest.raises(RegistryError):
        again.layer(LayerKey(ref, image.layer_digests[2]))
    again.close()


def test_mirrors_are_tried_first(registry: RegistryServer, registry_factory: Callable[..., RegistryServer],
                                 image: SociImage) -> None:
    empty = registry_factory()  # a mirror without the repository: the registry itself answers
    ref = image.ref(registry.host, "soci")
    config = (f'[resolver.host."{registry.host}"]\nplain_http = true\n'
              f'mirrors = [{{host = "{empty.host}", insecure = true}}]\n')
    with resolver_for(extra=config) as resolver:
        served = resolver.layer(LayerKey(ref, image.layer_digests[0]))
        assert served is not None and served.repository.endpoint.host == registry.host
    # a mirror that has it serves it
    mirror = registry_factory()
    images_ref = f"{mirror.host}/{image.repository}:soci"
    _convert("--min-layer-size", "0", image.ref(registry.host, "plain"), images_ref)
    config = (f'[resolver.host."{registry.host}"]\nplain_http = true\n'
              f'mirrors = [{{host = "{mirror.host}", insecure = true}}]\n')
    with resolver_for(extra=config) as resolver:
        served = resolver.layer(LayerKey(ref, image.layer_digests[0]))
        assert served is not None and served.repository.endpoint.host == mirror.host


def test_credentials_from_the_docker_config(registry_factory: Callable[..., RegistryServer], image: SociImage,
                                            tmp_path: Path, registry: RegistryServer) -> None:
    locked = registry_factory(auth="htpasswd")
    ref = f"{locked.host}/{image.repository}:soci"
    auth = tmp_path / "auth.json"
    auth.write_text(json.dumps({"auths": {locked.host: {"username": TEST_USER, "password": TEST_PASSWORD}}}))
    result = CliRunner().invoke(app, ["convert", "--span-size", "65536", "--min-layer-size", "0", "--plain-http",
                                      "--no-cache", "--progress", "none", "--user", f"{TEST_USER}:{TEST_PASSWORD}",
                                      image.ref(registry.host, "plain"), ref])
    assert result.exit_code == 0, result.output
    with resolver_for(locked.host, extra=f'[resolver]\ndocker_config = "{tmp_path / "none.json"}"\n') as without:
        with pytest.raises(AuthError):
            without.layer(LayerKey(ref, image.layer_digests[0]))
    with resolver_for(locked.host, extra=f'[resolver]\ndocker_config = "{auth}"\n') as with_auth:
        assert with_auth.layer(LayerKey(ref, image.layer_digests[0])) is not None


def test_a_configured_registry_is_reached_as_configured(registry: RegistryServer, image: SociImage) -> None:
    """A loopback registry without a table gets plain HTTP (as the snapshotter's); one whose table
    does not say `plain_http` is spoken to over HTTPS, which this registry does not answer."""
    with resolver_for() as resolver:
        assert resolver.layer(LayerKey(image.ref(registry.host, "soci"), image.layer_digests[0])) is not None
    with resolver_for(extra=f'[resolver.host."{registry.host}"]\ntls_verify = false\n') as resolver:
        with pytest.raises(RegistryError):
            resolver.layer(LayerKey(image.ref(registry.host, "soci"), image.layer_digests[0]))
