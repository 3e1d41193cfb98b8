"""The buildx hook's pure parts: metadata files as buildx writes them, the jobs planned from them,
the buildx command line socikit assembles, and the containerized builder's environment."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from socikit.cli import app
from socikit.cli.container import USAGE, convert_argv
from socikit.errors import ImageError
from socikit.integrations.buildx import (
    BUILDX_MISSING,
    BuildxMissingError,
    check_user_args,
    ensure_buildx,
    plan_build,
    user_metadata_file,
)
from socikit.integrations.hook import plan_jobs
from socikit.integrations.metadata import BuildRecord, parse_metadata
from tests.cliparse import parse_command_line

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32

# What `docker buildx build --push --metadata-file m.json -t reg.example:5000/app:1 .` writes
# (buildx 0.12; provenance trimmed).
BUILDX_METADATA = {
    "buildx.build.provenance": {"buildType": "https://mobyproject.org/buildkit@v1"},
    "buildx.build.ref": "builder/builder0/k2ddvvvrixgj5hk3a0uyrnz7q",
    "containerimage.config.digest": OTHER,
    "containerimage.descriptor": {
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": DIGEST,
        "size": 856,
        "annotations": {"org.opencontainers.image.created": "2024-03-01T10:00:00Z"},
    },
    "containerimage.digest": DIGEST,
    "image.name": "reg.example:5000/app:1,reg.example:5000/app:latest",
}


def _metadata(obj: object) -> bytes:
    return json.dumps(obj).encode()


# --- metadata files ---------------------------------------------------------------------------


def test_reads_what_buildx_writes() -> None:
    (record,) = parse_metadata(_metadata(BUILDX_METADATA), "m.json")
    assert record == BuildRecord(digest=DIGEST, media_type="application/vnd.oci.image.index.v1+json", size=856,
                                 names=("reg.example:5000/app:1", "reg.example:5000/app:latest"))
    assert record.source_reference() == f"reg.example:5000/app@{DIGEST}"


def test_reads_a_bake_metadata_file_per_target() -> None:
    second = {**BUILDX_METADATA, "containerimage.digest": OTHER,
              "containerimage.descriptor": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                            "digest": OTHER, "size": 500},
              "image.name": "reg.example:5000/worker:1"}
    records = parse_metadata(_metadata({"web": BUILDX_METADATA, "worker": second}), "bake.json")
    assert [(r.target, r.digest, r.names[0]) for r in records] == [
        ("web", DIGEST, "reg.example:5000/app:1"), ("worker", OTHER, "reg.example:5000/worker:1")]


def test_short_names_are_normalized_and_a_nameless_build_says_what_to_do() -> None:
    (record,) = parse_metadata(_metadata({"containerimage.digest": DIGEST, "image.name": "app"}), "m.json")
    assert record.source_reference() == f"docker.io/library/app@{DIGEST}"
    (nameless,) = parse_metadata(_metadata({"containerimage.digest": DIGEST}), "m.json")
    with pytest.raises(ImageError, match="has no image name .* --oci-archive"):
        nameless.source_reference()


@pytest.mark.parametrize(("obj", "message"), [
    ({"buildx.build.ref": "x"}, "names no exported image"),
    ({"containerimage.digest": "sha256:short"}, "is not a sha256 digest"),
    ({**BUILDX_METADATA, "containerimage.descriptor": {"digest": OTHER, "size": 1, "mediaType": "x"}},
     "names 'sha256:cdcd"),
    ({**BUILDX_METADATA, "containerimage.descriptor": {"digest": DIGEST, "size": -1, "mediaType": "x"}},
     "malformed mediaType or size"),
    ({**BUILDX_METADATA, "image.name": "Bad Name"}, "image.name"),
    ([1, 2], "not a JSON object"),
])
def test_malformed_metadata_is_one_clear_error(obj: object, message: str) -> None:
    with pytest.raises(ImageError, match=message) as info:
        parse_metadata(_metadata(obj), "m.json")
    assert str(info.value).startswith("m.json") and "\n" not in str(info.value)


def test_not_json_is_an_error() -> None:
    with pytest.raises(ImageError, match="^m.json is not a JSON buildx metadata file"):
        parse_metadata(b"{not json", "m.json")


# --- planning the conversion -------------------------------------------------------------------


def _record(**changes: object) -> BuildRecord:
    (record,) = parse_metadata(_metadata({**BUILDX_METADATA, **changes}), "m.json")
    return record


def test_metadata_only_converts_by_digest_into_the_build_names() -> None:
    (job,) = plan_jobs([_record()], oci_archive=None, destination=None)
    assert job.source == f"reg.example:5000/app@{DIGEST}"
    assert job.destinations == ("reg.example:5000/app:1", "reg.example:5000/app:latest")
    (job,) = plan_jobs([_record()], oci_archive=None, destination="oci:out:x")
    assert job.destinations == ("oci:out:x",)


def test_archive_jobs_pick_the_reported_digest(tmp_path: Path) -> None:
    archive = tmp_path / "build.tar"
    (job,) = plan_jobs([_record()], oci_archive=archive, destination=None)
    assert job.source == f"oci-archive:{archive}@{DIGEST}"
    assert job.destinations[0] == "reg.example:5000/app:1"
    (job,) = plan_jobs([], oci_archive=archive, destination="oci:out:x")
    assert (job.source, job.destinations, job.expected) == (f"oci-archive:{archive}", ("oci:out:x",), None)
    with pytest.raises(ImageError, match="name where the converted image goes"):
        plan_jobs([], oci_archive=archive, destination=None)


def test_bake_files_convert_each_target_in_place_only() -> None:
    records = [_record(), _record(**{"image.name": "reg.example:5000/w:1"})]
    assert [j.destinations for j in plan_jobs(records, oci_archive=None, destination=None)] == [
        ("reg.example:5000/app:1", "reg.example:5000/app:latest"), ("reg.example:5000/w:1",)]
    with pytest.raises(ImageError, match="leave out DST"):
        plan_jobs(records, oci_archive=None, destination="oci:x:y")
    with pytest.raises(ImageError, match="run the hook once per target"):
        plan_jobs(records, oci_archive=Path("a.tar"), destination=None)


# --- the buildx command line -------------------------------------------------------------------


def test_push_build_argv(tmp_path: Path) -> None:
    plan = plan_build(["--platform", "linux/amd64,linux/arm64", "-f", "Dockerfile.ci", "--build-arg", "A=1",
                       "--progress=plain", "--no-cache", "."],
                      tags=["reg.example:5000/app:1", "reg.example:5000/app:latest"], push=True, work_dir=tmp_path)
    metadata = tmp_path / "buildx-metadata.json"
    assert plan.argv == (
        "buildx", "build", "--tag", "reg.example:5000/app:1", "--tag", "reg.example:5000/app:latest",
        "--metadata-file", str(metadata), "--push",
        "--platform", "linux/amd64,linux/arm64", "-f", "Dockerfile.ci", "--build-arg", "A=1",
        "--progress=plain", "--no-cache", ".",
    )
    assert (plan.metadata_file, plan.oci_archive) == (metadata, None)


def test_local_build_exports_an_oci_archive(tmp_path: Path) -> None:
    plan = plan_build(["."], tags=["app:dev"], push=False, work_dir=tmp_path)
    archive = tmp_path / "build.oci.tar"
    assert plan.argv == ("buildx", "build", "--tag", "app:dev", "--metadata-file",
                         str(tmp_path / "buildx-metadata.json"), "--output", f"type=oci,dest={archive}", ".")
    assert plan.oci_archive == archive


@pytest.mark.parametrize("given", [["--metadata-file", "out/m.json", "."], ["--metadata-file=out/m.json", "."]])
def test_the_users_metadata_file_is_used(tmp_path: Path, given: list[str]) -> None:
    assert user_metadata_file(given) == Path("out/m.json")
    plan = plan_build(given, tags=["app:1"], push=True, work_dir=tmp_path)
    assert plan.metadata_file == Path("out/m.json")
    assert plan.argv.count("--metadata-file") + sum(a.startswith("--metadata-file=") for a in plan.argv) == 1


@pytest.mark.parametrize("bad", [["--output", "type=local,dest=x"], ["--output=type=docker"], ["-o", "x"],
                                 ["-otype=tar"], ["--load"]])
def test_output_flags_are_refused(bad: list[str]) -> None:
    with pytest.raises(ImageError, match="chooses the build's output itself"):
        check_user_args([*bad, "."])


def test_a_name_is_required(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="--tag"):
        plan_build(["."], tags=[], push=True, work_dir=tmp_path)


def _parsed(*argv: str) -> dict[str, object]:
    path, params = parse_command_line(list(argv))
    assert path == ["buildx", "build"]
    return params


def test_cli_separates_its_flags_from_buildx_flags_in_order() -> None:
    params = _parsed("buildx", "build", "--platform", "linux/amd64,linux/arm64", "-t", "reg.example/app:1",
                     "--build-arg", "V=2", "--push", "--soci", "v1", "--progress", "plain", "-f", "ci/Dockerfile",
                     "--plain-http", ".")
    assert params["tag"] == ("reg.example/app:1",)
    assert params["push"] is True and params["soci"] == "v1" and params["plain_http"] is True
    assert params["buildx_args"] == ("--platform", "linux/amd64,linux/arm64", "--build-arg", "V=2",
                                     "--progress", "plain", "-f", "ci/Dockerfile", ".")


# --- buildx on this machine ---------------------------------------------------------------------


def _buildx_installed() -> bool:
    docker = shutil.which("docker")
    return docker is not None and subprocess.run([docker, "buildx", "version"], capture_output=True).returncode == 0


@pytest.mark.skipif(_buildx_installed(), reason="docker buildx is installed here: its absence cannot be shown")
def test_missing_buildx_is_one_line_saying_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(BuildxMissingError) as info:
        ensure_buildx()
    assert str(info.value) == BUILDX_MISSING
    result = CliRunner().invoke(app, ["buildx", "build", "-t", "reg.example/app:1", "--push", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.strip() == f"error: {BUILDX_MISSING}"
    assert "docker-buildx" in result.output and "docker-daemon:" in result.output


def test_buildx_build_refuses_output_flags_before_running_anything(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["buildx", "build", "-t", "reg.example/app:1", "--load", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.startswith("error: socikit buildx build chooses the build's output itself")
    assert "\n" not in result.output.strip()


# --- the containerized builder -----------------------------------------------------------------


def test_builder_defaults_convert_in_place() -> None:
    assert convert_argv(["reg.example/app:1"], {}) == [
        "convert", "--progress", "plain", "--v2", "reg.example/app:1", "reg.example/app:1"]


def test_builder_environment() -> None:
    env = {"MIN_LAYER_SIZE": "5", "SPAN_SIZE": "1048576", "IMAGE_ARCH": "linux/arm64, linux/amd64",
           "SOCI_INDEX_VERSION": "V1", "PLAIN_HTTP": "true"}
    assert convert_argv(["reg.example/app:1", "reg.example/app:1-soci"], env) == [
        "convert", "--progress", "plain", "--v1", "--min-layer-size", str(5 << 20), "--span-size", "1048576",
        "--platform", "linux/arm64", "--platform", "linux/amd64", "--plain-http",
        "reg.example/app:1", "reg.example/app:1-soci"]
    assert "--all-platforms" in convert_argv(["r/a:1"], {"IMAGE_ARCH": "all"})
    assert "--plain-http" not in convert_argv(["r/a:1"], {"PLAIN_HTTP": "false"})


@pytest.mark.parametrize(("args", "env", "message"), [
    ([], {}, USAGE),
    (["a:1", "b:1", "c:1"], {}, USAGE),
    (["--help"], {}, USAGE),
    (["r/a:1"], {"SOCI_INDEX_VERSION": "v3"}, "SOCI_INDEX_VERSION='v3': expected v2 or v1"),
    (["r/a:1"], {"MIN_LAYER_SIZE": "ten"}, "MIN_LAYER_SIZE='ten': expected a whole number"),
    (["r/a:1"], {"SPAN_SIZE": "-1"}, "SPAN_SIZE='-1': expected a whole number"),
    (["r/a:1"], {"PLAIN_HTTP": "maybe"}, "PLAIN_HTTP='maybe': expected true or false"),
])
def test_builder_bad_input(args: list[str], env: dict[str, str], message: str) -> None:
    with pytest.raises(ImageError) as info:
        convert_argv(args, env)
    assert str(info.value) == message


def test_every_builder_argv_parses_as_a_convert_command() -> None:
    for env in ({}, {"IMAGE_ARCH": "all", "SOCI_INDEX_VERSION": "v1", "MIN_LAYER_SIZE": "0", "SPAN_SIZE": "65536",
                     "PLAIN_HTTP": "1"}):
        path, params = parse_command_line(convert_argv(["reg.example/app:1"], env))
        assert path == ["convert"]
        assert params["source"] == params["destination"] == "reg.example/app:1"


def test_hook_cli_bad_input_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    result = CliRunner().invoke(app, ["hook", "--metadata-file", str(missing)])
    assert result.exit_code == 1
    assert result.output.strip() == f"error: cannot read the metadata file {missing}: No such file or directory"
    nameless = tmp_path / "m.json"
    nameless.write_text(json.dumps({"containerimage.digest": DIGEST}))
    result = CliRunner().invoke(app, ["hook", "--metadata-file", str(nameless)])
    assert result.exit_code == 1 and "has no image name" in result.output and "\n" not in result.output.strip()
    result = CliRunner().invoke(app, ["hook"])
    assert result.exit_code == 2 and "--metadata-file FILE, --oci-archive FILE, or both" in result.output
