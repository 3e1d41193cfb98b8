# ruff: noqa: F811  (pytest fixtures imported by name)
"""The local store against Debian's docker-registry, through the `socikit` command as a user runs
it: one image under two references (created twice, pushed through the second), the reference
forms `index list --ref` and `push` accept (normalized, by digest or digest prefix), and
`index list --remote` rows with every column filled, for SOCI v1 and v2 and for an image index
and a single manifest."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.cli import run_socikit as socikit
from tests.integration.registry_fixtures import RegistryServer, registry  # noqa: F401  (fixture)
from tests.vectors import all_vectors

pytestmark = [pytest.mark.integration, pytest.mark.registry]
MULTI = next(v for v in all_vectors() if v.name == "multi-platform")
SINGLE = next(v for v in all_vectors() if v.name == "tricky-pax")
SMALL = ["--span-size", "65536", "--min-layer-size", "0", "--progress", "none", "--plain-http"]
V1_DIGESTS = {"sha256:" + f.stem.rsplit("-", 1)[1] for f in (MULTI.path / "expected-current").glob("soci-index-v1-*")}


def skopeo(*args: str) -> bytes:
    return subprocess.run(["skopeo", *args], capture_output=True, check=True, timeout=120).stdout


def push_image(server: RegistryServer, vector_dir: Path, ref: str) -> str:
    """The image copied into the registry by skopeo (not by us); `HOST/REF`."""
    skopeo("copy", "--all", "--dest-tls-verify=false", f"oci:{vector_dir}:latest", f"docker://{server.host}/{ref}")
    return f"{server.host}/{ref}"


def referrers(server: RegistryServer, repo: str, manifest_digest: str) -> set[str]:
    """The SOCI indexes listed in the fallback tag of a manifest (Debian's registry has no
    Referrers API)."""
    tag = f"{server.host}/{repo}:sha256-{manifest_digest.split(':')[1]}"
    try:
        raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{tag}")
    except subprocess.CalledProcessError:
        return set()
    return {m["digest"] for m in json.loads(raw)["manifests"]}


def listed(root: Path, *args: str) -> list[dict[str, object]]:
    result = socikit("index", "list", "--json", *args, root=root)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_push_through_a_second_reference_to_the_same_image(registry, tmp_path: Path) -> None:
    first = push_image(registry, MULTI.input_dir, "twice-a:1")
    second = push_image(registry, MULTI.input_dir, "twice-b:1")
    root = tmp_path / "root"
    for ref in (first, second):
        created = socikit("create", *SMALL, "--all-platforms", ref, root=root)
        assert created.returncode == 0, created.stderr
    assert {r["digest"] for r in listed(root, "--ref", second)} == V1_DIGESTS

    pushed = socikit("push", "--v1", "--plain-http", "--all-platforms", "--json", second, root=root)
    assert pushed.returncode == 0, pushed.stderr
    rows = json.loads(pushed.stdout)
    assert {r["digest"] for r in rows} == V1_DIGESTS and all(r["pushed"] for r in rows)
    for record in listed(root, "--ref", second):
        assert referrers(registry, "twice-b", str(record["manifest"])) == {record["digest"]}
        assert referrers(registry, "twice-a", str(record["manifest"])) == set()  # not pushed there


def test_reference_forms_for_list_and_push(registry, tmp_path: Path) -> None:
    ref = push_image(registry, MULTI.input_dir, "forms:1")
    root = tmp_path / "root"
    assert socikit("create", *SMALL, "--all-platforms", ref, root=root).returncode == 0
    records = listed(root)
    assert len(records) == 2 and {r["image_ref"] for r in records} == {ref}
    assert listed(root, "--ref", f"docker://{ref}") == records
    assert listed(root, "--ref", f"{registry.host}/forms:2") == []

    one = records[0]
    manifest = str(one["manifest"])
    assert listed(root, "--ref", f"{registry.host}/forms@{manifest}") == [one]
    assert listed(root, "--ref", f"docker://{registry.host}/forms@{manifest[:19]}") == [one]

    # push by the platform manifest's digest prefix: that platform's index, to that repository.
    pushed = socikit("push", "--v1", "--plain-http", "--json", f"{registry.host}/forms@{manifest[7:21]}", root=root)
    assert pushed.returncode == 0, pushed.stderr
    assert [(r["digest"], r["pushed"]) for r in json.loads(pushed.stdout)] == [(one["digest"], True)]
    assert referrers(registry, "forms", manifest) == {one["digest"]}

    short = socikit("push", "--v1", "--plain-http", f"{registry.host}/forms@sha256:{manifest[7:15]}", root=root)
    assert short.returncode == 1 and "invalid digest" in short.stderr  # fewer than 12 digits: not a prefix
    unknown = socikit("push", "--v1", "--plain-http", f"{registry.host}/forms@{'0' * 12}", root=root)
    assert unknown.returncode == 1 and "no SOCI v1 index" in unknown.stderr


def test_remote_listing_fills_size_and_platform(registry, tmp_path: Path) -> None:
    multi = push_image(registry, MULTI.input_dir, "remote-multi:1")
    single = push_image(registry, SINGLE.input_dir, "remote-single:1")
    for src, version in ((multi, "--v2"), (multi, "--v1"), (single, "--v2"), (single, "--v1")):
        dst = f"{src.rsplit(':', 1)[0]}:{version[2:]}"
        result = socikit("convert", version, *SMALL, "--all-platforms", src, dst, root=tmp_path / "root")
        assert result.returncode == 0, result.stderr

    def expected_sizes(vector_dir: Path) -> dict[str, int]:
        return {"sha256:" + f.stem.rsplit("-", 1)[1]: f.stat().st_size
                for f in (vector_dir / "expected-current").glob("soci-index-v*.json")}

    cases = [(multi, MULTI.path, {"linux/amd64", "linux/arm64/v8"}), (single, SINGLE.path, {"linux/amd64"})]
    for src, vector_path, platforms in cases:
        for version in ("v1", "v2"):
            ref = f"{src.rsplit(':', 1)[0]}:{version}"
            result = socikit("index", "list", "--remote", ref, "--plain-http", "--json")
            assert result.returncode == 0, result.stderr
            rows = [r for r in json.loads(result.stdout) if r["version"] == version]
            assert rows and {r["platform"] for r in rows} == platforms, (ref, rows)
            sizes = expected_sizes(vector_path)
            assert all(r["size"] == sizes[r["digest"]] for r in rows), (ref, rows, sizes)

            if version == "v2" and src == multi:
                # By a platform manifest's digest: no image index around it, so the index's size
                # comes from the registry and the platform from the image config.
                row = rows[0]
                by_digest = f"{src.rsplit(':', 1)[0]}@{row['manifest']}"
                result = socikit("index", "list", "--remote", by_digest, "--plain-http", "--json")
                assert result.returncode == 0, result.stderr
                assert [(r["digest"], r["size"], r["platform"]) for r in json.loads(result.stdout)] == [
                    (row["digest"], row["size"], row["platform"])]

            table = socikit("index", "list", "--remote", ref, "--plain-http")
            assert table.returncode == 0, table.stderr
            for row in rows:
                line = next(x for x in table.stdout.splitlines() if x.startswith(str(row["digest"])))
                assert re.search(rf"^\S+\s+{row['size']}\s+\S+\s+{re.escape(str(row['platform']))}\s", line), line
