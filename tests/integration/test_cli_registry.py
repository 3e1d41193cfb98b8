# ruff: noqa: F811  (pytest fixtures imported by name)
"""The `socikit` command, run as a user runs it (a separate process), against Debian's
docker-registry: the default platform, the order a registry destination is written in (read from
the registry's own access log), TLS flags, `push --existing-index`, `--jobs` across worker
processes. Independent clients (skopeo, plain HTTP GETs) read the results back."""

from __future__ import annotations

import json
import platform
import re
import subprocess
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.cli import run_socikit as socikit
from tests.integration.registry_fixtures import (  # noqa: F401  (fixtures)
    RegistryServer,
    free_port,
    registry,
    tls_registry,
)
from tests.vectors import all_vectors

pytestmark = [pytest.mark.integration, pytest.mark.registry]
MULTI = next(v for v in all_vectors() if v.name == "multi-platform")
GOLDEN_INDEX = (MULTI.path / "expected-current" / "converted-index.json").read_bytes()
SMALL = ["--span-size", "65536", "--min-layer-size", "0"]
MANIFEST_ACCEPT = ", ".join([
    "application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])  # fmt: skip


def skopeo(*args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["skopeo", *args], capture_output=True, check=check, timeout=120)


def push_original(server: RegistryServer, repo: str) -> str:
    """The multi-platform vector, copied into the registry by skopeo (not by us)."""
    ref = f"{server.host}/{repo}:1"
    tls = [f"--dest-cert-dir={server.tls.cert_dir}"] if server.tls else ["--dest-tls-verify=false"]
    skopeo("copy", "--all", *tls, f"oci:{MULTI.input_dir}:latest", f"docker://{ref}")
    return ref


def raw_manifest(server: RegistryServer, ref: str) -> bytes:
    tls = [f"--cert-dir={server.tls.cert_dir}"] if server.tls else ["--tls-verify=false"]
    return skopeo("inspect", "--raw", *tls, f"docker://{ref}").stdout


def host_platform() -> tuple[str, str | None]:
    """(architecture, variant) of this machine, as the image's platforms spell them."""
    machine = platform.machine()
    known = {"x86_64": ("amd64", None), "aarch64": ("arm64", "v8"), "arm64": ("arm64", "v8")}
    return known.get(machine, (machine, None))


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    line = result.stderr.strip()
    assert line.startswith("error: ") and "\n" not in line and "Traceback" not in line, result.stderr
    return line


# ---------------------------------------------------------------------------------------------
# default platform


def test_convert_and_create_default_to_the_host_platform(registry, tmp_path: Path) -> None:
    src = push_original(registry, "default-platform")
    dst = f"{registry.host}/default-platform:soci"
    arch, variant = host_platform()
    present = {("amd64", None), ("arm64", "v8")}
    result = socikit("convert", "--plain-http", *SMALL, "--progress", "none", "--json", src, dst, root=tmp_path / "r")
    if (arch, variant) not in present:  # a host the image has no manifest for: the error lists what it has
        line = one_error_line(result)
        assert "linux/amd64" in line and "linux/arm64/v8" in line
        return
    assert result.returncode == 0, result.stderr
    expected = "linux/" + arch + (f"/{variant}" if variant else "")
    assert [p["platform"] for p in json.loads(result.stdout)["platforms"]] == [expected]
    entries = json.loads(raw_manifest(registry, dst))["manifests"]
    soci = [e for e in entries if e.get("artifactType")]
    assert len(soci) == 1 and soci[0]["platform"]["architecture"] == arch
    images = [e for e in entries if not e.get("artifactType")]
    assert len(images) == 2  # the other platform stays in the image, without a SOCI index
    annotated = [e for e in images if "com.amazon.soci.index-digest" in e.get("annotations", {})]
    assert [e["platform"]["architecture"] for e in annotated] == [arch]

    root = tmp_path / "store"
    assert socikit("create", "--plain-http", *SMALL, "--progress", "none", src, root=root).returncode == 0
    listed = json.loads(socikit("index", "list", "--json", root=root).stdout)
    assert [row["platform"] for row in listed] == [expected]


# ---------------------------------------------------------------------------------------------
# write order, from the registry's access log


class LoggedRegistry(RegistryServer):
    """docker-registry with its access log on: one line per request, written when the request
    has been handled (before the client gets the response), so the file is the order the
    registry saw the requests complete in."""

    def write_config(self) -> Path:
        config = super().write_config()
        text = config.read_text()
        assert "    disabled: true\n" in text
        config.write_text(text.replace("    disabled: true\n", "    disabled: false\n"))
        return config

    def requests(self, repo: str) -> list[Request]:
        found = []
        for line in (self.root / "registry.log").read_text().splitlines():
            match = _ACCESS_LINE.match(line)
            if match and match["path"].startswith(f"/v2/{repo}/"):
                found.append(Request(match["method"], match["path"], match["query"] or "", int(match["status"])))
        return found


_ACCESS_LINE = re.compile(r'^\S+ - \S+ \[[^]]+\] "(?P<method>[A-Z]+) (?P<path>[^?\s]+)(?:\?(?P<query>\S*))? '
                          r'HTTP/[\d.]+" (?P<status>\d{3}) ')  # fmt: skip


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: str
    status: int

    @property
    def param(self) -> dict[str, str]:
        return {k: v[0] for k, v in urllib.parse.parse_qs(self.query).items()}


@pytest.fixture(scope="module")
def logged_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoggedRegistry]:
    server = LoggedRegistry(root=tmp_path_factory.mktemp("logged-registry"), port=free_port())
    try:
        server.start()
        yield server
    finally:
        server.stop()


def _children(document: dict[str, object]) -> set[str]:
    """Digests a manifest or index refers to (its content must exist before it does)."""
    found = set()
    for key in ("config", "subject"):
        if isinstance(document.get(key), dict):
            found.add(document[key]["digest"])  # type: ignore[index]
    for key in ("layers", "manifests"):
        found |= {d["digest"] for d in document.get(key, [])}  # type: ignore[union-attr]
    return found


def check_write_order(server: LoggedRegistry, repo: str, tag: str) -> list[Request]:
    """Every manifest is written after everything it refers to, and `tag` last of all writes."""
    writes = [r for r in server.requests(repo) if r.method not in ("GET", "HEAD")]
    assert writes, "no write reached the registry"
    present: set[str] = set()
    manifests_path = f"/v2/{repo}/manifests/"
    written_before_tag: dict[str, set[str]] = {}  # tag -> what existed at its last write
    for request in writes:
        assert request.status in (201, 202), request
        if request.path.startswith(f"/v2/{repo}/blobs/uploads/"):
            if request.status == 201:  # an upload completed, or a blob was mounted
                present.add(request.param.get("digest") or request.param["mount"])
            continue
        assert request.method == "PUT" and request.path.startswith(manifests_path), request
        reference = request.path.removeprefix(manifests_path)
        if reference.startswith("sha256:"):
            body = requests.get(f"{server.url}{request.path}", headers={"Accept": MANIFEST_ACCEPT}, timeout=10)
            missing = _children(body.json()) - present
            assert not missing, f"{request.path} written before {missing}"
            present.add(reference)
        else:
            written_before_tag[reference] = set(present)
    for reference, written in written_before_tag.items():  # a tag's final content refers to written content
        listed = requests.get(f"{server.url}{manifests_path}{reference}", headers={"Accept": MANIFEST_ACCEPT},
                              timeout=10)  # fmt: skip
        missing = _children(listed.json()) - written
        assert not missing, f"tag {reference} written before {missing}"
    assert writes[-1] == Request("PUT", manifests_path + tag, "", 201), f"last write {writes[-1]}, not the tag"
    assert [r.path for r in writes].count(manifests_path + tag) == 1
    return writes


@pytest.mark.parametrize("version", ["v2", "v1"])
def test_registry_destination_is_written_blobs_first_and_the_tag_last(logged_registry, tmp_path: Path,
                                                                        version: str) -> None:
    repo = f"order-{version}"
    result = socikit("convert", f"--{version}", "--plain-http", *SMALL, "--all-platforms", "--progress", "none",
                     "--json", f"oci:{MULTI.input_dir}:latest", f"{logged_registry.host}/{repo}:1",
                     root=tmp_path / "r")  # fmt: skip
    assert result.returncode == 0, result.stderr
    writes = check_write_order(logged_registry, repo, "1")
    summary = json.loads(result.stdout)
    tagged = requests.get(f"{logged_registry.url}/v2/{repo}/manifests/1", headers={"Accept": MANIFEST_ACCEPT},
                          timeout=10)  # fmt: skip
    assert tagged.headers["Docker-Content-Digest"] == summary["result"]["digest"]
    ztocs = {"sha256:" + p.stem[len("ztoc-"):] for p in (MULTI.path / "expected-current").glob("ztoc-*.bin")}
    uploaded = {r.param.get("digest") for r in writes if r.status == 201 and "/blobs/uploads/" in r.path}
    assert len(ztocs) == 3 and ztocs <= uploaded
    if version == "v2":
        assert raw_manifest(logged_registry, f"{logged_registry.host}/{repo}:1") == GOLDEN_INDEX
        # The converted index goes up once, by tag (which stores it by digest too); the SOCI
        # indexes and image manifests before it, by digest.
        puts = [r.path.rsplit("/", 1)[1] for r in writes if r.method == "PUT" and "/manifests/" in r.path]
        assert summary["result"]["digest"] not in puts and puts[-1] == "1" and puts.count("1") == 1
        assert len(puts) == 1 + 2 * 2  # two platforms: a SOCI index and a manifest each
    else:  # the SOCI v1 indexes went into the fallback tags, each after the index it lists
        fallback = [r for r in writes if "/manifests/sha256-" in r.path]
        assert len(fallback) == 2


def test_the_order_check_catches_a_write_after_the_tag(logged_registry) -> None:
    from socikit.oci import gojson
    from socikit.oci import mediatypes as mt
    from socikit.oci.descriptor import descriptor_for
    from socikit.registry import RegistryClient

    client = RegistryClient(logged_registry.host, plain_http=True)
    config, layer, late = b"{}", b"layer", b"a blob written after the tag"
    config_desc = descriptor_for(config, mt.MEDIA_TYPE_OCI_CONFIG)
    layer_desc = descriptor_for(layer, mt.MEDIA_TYPE_OCI_LAYER_GZIP)
    manifest = gojson.dumps({"schemaVersion": 2, "mediaType": mt.MEDIA_TYPE_OCI_MANIFEST,
                             "config": config_desc.to_json(), "layers": [layer_desc.to_json()]})  # fmt: skip
    client.push_blob("order-bad", config_desc, config)
    client.push_blob("order-bad", layer_desc, layer)
    client.put_manifest("order-bad", "1", manifest, mt.MEDIA_TYPE_OCI_MANIFEST)
    client.push_blob("order-bad", descriptor_for(late, mt.MEDIA_TYPE_OCI_LAYER_GZIP), late)
    client.close()
    with pytest.raises(AssertionError, match="not the tag"):
        check_write_order(logged_registry, "order-bad", "1")


# ---------------------------------------------------------------------------------------------
# TLS flags


def test_tls_verify_and_cert_dir_from_the_command_line(tls_registry, tmp_path: Path) -> None:
    src = f"oci:{MULTI.input_dir}:latest"
    args = [*SMALL, "--all-platforms", "--progress", "none"]
    refused = socikit("convert", *args, src, f"{tls_registry.host}/tls-flags:refused", root=tmp_path / "r")
    line = one_error_line(refused)
    assert "TLS error" in line and "CERTIFICATE_VERIFY_FAILED" in line and tls_registry.host in line
    assert skopeo("inspect", "--raw", f"--cert-dir={tls_registry.tls.cert_dir}",
                  f"docker://{tls_registry.host}/tls-flags:refused", check=False).returncode != 0  # nothing tagged

    for tag, flags in (("no-verify", ["--tls-verify=false"]), ("no-verify-spaced", ["--tls-verify", "false"]),
                       ("cert-dir", ["--cert-dir", str(tls_registry.tls.cert_dir)])):  # fmt: skip
        result = socikit("convert", *args, *flags, src, f"{tls_registry.host}/tls-flags:{tag}", root=tmp_path / "r")
        assert result.returncode == 0, (flags, result.stderr)
        assert raw_manifest(tls_registry, f"{tls_registry.host}/tls-flags:{tag}") == GOLDEN_INDEX

    bad = socikit("convert", *args, "--tls-verify", "maybe", src, f"{tls_registry.host}/tls-flags:x")
    assert bad.returncode == 2 and "--tls-verify" in bad.stderr


def test_jobs_across_worker_processes_from_a_tls_registry(tls_registry, tmp_path: Path) -> None:
    """Worker processes open their own registry clients: they must get the --cert-dir too."""
    src = push_original(tls_registry, "tls-jobs")
    for jobs in ("1", "2"):
        dst = f"{tls_registry.host}/tls-jobs:soci-{jobs}"
        result = socikit("convert", *SMALL, "--all-platforms", "--progress", "none", "--no-cache", "--jobs", jobs,
                         "--cert-dir", str(tls_registry.tls.cert_dir), "--json", src, dst, root=tmp_path / "r")
        assert result.returncode == 0, (jobs, result.stderr)
        layers = [layer for p in json.loads(result.stdout)["platforms"] for layer in p["layers"]]
        assert len(layers) == 4 and not any(layer["cached"] for layer in layers)
        assert raw_manifest(tls_registry, dst) == GOLDEN_INDEX


# ---------------------------------------------------------------------------------------------
# push --existing-index


def _listed_referrers(server: RegistryServer, repo: str, manifest_digest: str) -> list[str]:
    tag = f"{server.host}/{repo}:sha256-{manifest_digest.split(':')[1]}"
    return [m["digest"] for m in json.loads(raw_manifest(server, tag))["manifests"]]


def _created(server: RegistryServer, ref: str, root: Path, span: str) -> tuple[str, str]:
    """`socikit create` for the host platform: (SOCI index digest, image manifest digest)."""
    result = socikit("create", "--plain-http", "--span-size", span, "--min-layer-size", "0", "--progress", "none",
                     "--json", ref, root=root)  # fmt: skip
    assert result.returncode == 0, result.stderr
    (built,) = json.loads(result.stdout)["platforms"]
    listed = json.loads(socikit("index", "list", "--json", root=root).stdout)
    row = next(r for r in listed if r["digest"] == built["soci_index"])
    return row["digest"], row["manifest"]


def test_push_existing_index_skip_warn_allow(registry, tmp_path: Path) -> None:
    ref = push_original(registry, "existing")
    root = tmp_path / "store"
    push = ["push", "--v1", "--plain-http"]

    first, manifest = _created(registry, ref, root, "65536")
    result = socikit(*push, ref, root=root)
    assert result.returncode == 0 and f"{first} pushed" in result.stdout, result.stderr
    assert "already has" not in result.stderr
    assert _listed_referrers(registry, "existing", manifest) == [first]

    second, _ = _created(registry, ref, root, "32768")
    assert second != first
    skipped = socikit(*push, "--existing-index", "skip", ref, root=root)
    assert skipped.returncode == 0 and f"{second} skipped" in skipped.stdout, skipped.stderr
    assert f"already has SOCI index(es) {first}" in skipped.stderr and "warning" not in skipped.stderr
    assert _listed_referrers(registry, "existing", manifest) == [first]

    warned = socikit(*push, "--existing-index", "warn", ref, root=root)
    assert warned.returncode == 0 and f"{second} pushed" in warned.stdout, warned.stderr
    assert re.search(rf"^warning: .*already has SOCI index\(es\) {first}$", warned.stderr, re.MULTILINE)
    assert sorted(_listed_referrers(registry, "existing", manifest)) == sorted([first, second])

    third, _ = _created(registry, ref, root, "16384")
    allowed = socikit(*push, "--existing-index", "allow", ref, root=root)
    assert allowed.returncode == 0 and f"{third} pushed" in allowed.stdout, allowed.stderr
    assert "warning" not in allowed.stderr and "already has" not in allowed.stderr
    assert sorted(_listed_referrers(registry, "existing", manifest)) == sorted([first, second, third])

    # --json keeps stdout for the JSON rows; the warning still reaches the user, on stderr.
    as_json = socikit(*push, "--existing-index", "warn", "--json", ref, root=root)
    assert as_json.returncode == 0, as_json.stderr
    assert [(r["digest"], r["pushed"]) for r in json.loads(as_json.stdout)] == [(third, True)]
    assert re.search(rf"^warning: .*already has SOCI index\(es\) .*{third}", as_json.stderr, re.MULTILINE)
    assert sorted(_listed_referrers(registry, "existing", manifest)) == sorted([first, second, third])  # once each

    bad = socikit(*push, "--existing-index", "sometimes", ref, root=root)
    assert bad.returncode == 2 and "--existing-index" in bad.stderr
