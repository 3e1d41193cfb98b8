"""The local store keeps one record per (SOCI index, image reference, platform): one index may
belong to many references and platforms; `index rm --ref` removes only that reference's records
and a blob only once no record needs it. Digests print whole and are taken back by any unique
prefix."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from socikit.cli import app
from socikit.errors import ImageError
from socikit.pipeline.store import RefQuery, resolve_digest
from tests.terminal import run_on_terminal
from tests.vectors import all_vectors

MULTI = next(v for v in all_vectors() if v.name == "multi-platform")
SMALL = ["--span-size", "65536", "--min-layer-size", "0", "--progress", "none"]
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def _invoke(root: Path, *args: str):
    return CliRunner().invoke(app, list(args), env={"SOCIKIT_ROOT": str(root)})


def _listed(root: Path, *args: str) -> list[dict[str, object]]:
    result = _invoke(root, "index", "list", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _copy(tmp_path: Path, name: str) -> Path:
    """A copy of the multi-platform image: the same bytes under another reference."""
    return Path(shutil.copytree(MULTI.input_dir, tmp_path / name))


def _create(root: Path, ref: str) -> None:
    result = _invoke(root, "create", "--all-platforms", *SMALL, ref)
    assert result.exit_code == 0, result.output


def _blobs(root: Path) -> set[str]:
    return {"sha256:" + p.name for p in (root / "store" / "blobs" / "sha256").iterdir()}


def test_one_index_recorded_for_two_references(tmp_path: Path) -> None:
    root = tmp_path / "root"
    first, second = f"oci:{_copy(tmp_path, 'a')}:latest", f"oci:{_copy(tmp_path, 'b')}:latest"
    _create(root, first)
    _create(root, second)
    mine = _listed(root, "--ref", first)
    theirs = _listed(root, "--ref", second)
    assert {(r["digest"], r["platform"]) for r in mine} == {(r["digest"], r["platform"]) for r in theirs}
    assert len(mine) == 2 and {r["image_ref"] for r in mine} == {first} and {r["image_ref"] for r in theirs} == {second}
    assert len(_listed(root)) == 4
    ztocs = _invoke(root, "ztoc", "list", "--json").stdout

    # The first reference's records go; the indexes and ztocs stay for the second.
    removed = _invoke(root, "index", "rm", "--ref", first)
    assert removed.exit_code == 0, removed.output
    lines = removed.stdout.splitlines()
    assert len(lines) == 2 and all("the index stays" in line for line in lines)
    assert _listed(root, "--ref", first) == []
    assert [r["digest"] for r in _listed(root)] == [r["digest"] for r in theirs]
    for row in theirs:
        assert _invoke(root, "index", "info", str(row["digest"])).exit_code == 0
    assert _invoke(root, "ztoc", "list", "--json").stdout == ztocs

    # The last records: now the blobs go too (the `{}` config blob, shared by every index, stays).
    removed = _invoke(root, "index", "rm", "--ref", second)
    assert removed.exit_code == 0 and "stays" not in removed.stdout, removed.output
    assert _listed(root) == [] and json.loads(_invoke(root, "ztoc", "list", "--json").stdout) == []
    assert _blobs(root) == {"sha256:" + hashlib.sha256(b"{}").hexdigest()}


def test_creating_again_refreshes_the_record_instead_of_adding_one(tmp_path: Path) -> None:
    root = tmp_path / "root"
    ref = f"oci:{MULTI.input_dir}:latest"
    _create(root, ref)
    _create(root, ref)
    assert len(_listed(root)) == 2
    entries = json.loads((root / "store" / "index.json").read_bytes())["manifests"]
    assert len(entries) == 2


def _with_a_second_platform_name(tmp_path: Path) -> Path:
    """The multi-platform image whose index also lists its arm64/v8 manifest as plain
    linux/arm64: one manifest, so one SOCI v1 index, for two platforms."""
    layout = _copy(tmp_path, "aliased")
    index_json = json.loads((layout / "index.json").read_bytes())
    root = index_json["manifests"][0]
    blob = layout / "blobs" / "sha256" / root["digest"].split(":", 1)[1]
    image_index = json.loads(blob.read_bytes())
    arm = next(e for e in image_index["manifests"] if e["platform"].get("variant") == "v8")
    image_index["manifests"].append({**arm, "platform": {"architecture": "arm64", "os": "linux"}})
    data = json.dumps(image_index).encode()
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    index_json["manifests"][0] = {**root, "digest": f"sha256:{digest}", "size": len(data)}
    (layout / "index.json").write_text(json.dumps(index_json))
    return layout


def test_one_index_recorded_for_two_platforms(tmp_path: Path) -> None:
    root = tmp_path / "root"
    ref = f"oci:{_with_a_second_platform_name(tmp_path)}:latest"
    _create(root, ref)
    listed = _listed(root, "--ref", ref)
    assert sorted(str(r["platform"]) for r in listed) == ["linux/amd64", "linux/arm64", "linux/arm64/v8"]
    by_platform = {r["platform"]: r["digest"] for r in listed}
    assert by_platform["linux/arm64"] == by_platform["linux/arm64/v8"]

    # Removing the shared index by digest removes both of its records, and its blob.
    removed = _invoke(root, "index", "rm", str(by_platform["linux/arm64"]))
    assert removed.exit_code == 0, removed.output
    assert len(removed.stdout.splitlines()) == 2 and "stays" not in removed.stdout
    assert [r["platform"] for r in _listed(root)] == ["linux/amd64"]
    assert by_platform["linux/arm64"] not in _blobs(root)


def test_digests_and_unique_prefixes(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _create(root, f"oci:{MULTI.input_dir}:latest")
    digest = str(_listed(root)[0]["digest"])
    whole = _invoke(root, "index", "info", digest).stdout
    for text in (digest[:19], digest[7:19], digest[7:].upper(), digest[:40]):
        result = _invoke(root, "index", "info", text)
        assert result.exit_code == 0 and result.stdout == whole, (text, result.output)

    short = _invoke(root, "index", "info", digest[:15])
    assert short.exit_code == 1 and "at least 12 hex digits" in short.output
    unknown = _invoke(root, "index", "info", "0123456789ab")
    assert unknown.exit_code == 1 and "no index matches 0123456789ab" in unknown.output
    assert "not in the local store" not in unknown.output
    assert _invoke(root, "index", "rm", "sha256:0123456789ab").output.startswith("error: no index matches")

    ztoc = json.loads(_invoke(root, "ztoc", "list", "--json").stdout)[0]["digest"]
    info = _invoke(root, "ztoc", "info", ztoc[7:21], "--json")
    assert info.exit_code == 0 and json.loads(info.stdout)["version"] == "0.9"
    unknown = _invoke(root, "ztoc", "info", "sha256:0123456789ab")
    assert unknown.exit_code == 1 and "no ztoc matches sha256:0123456789ab" in unknown.output

    assert _invoke(root, "index", "rm", digest[7:19]).exit_code == 0
    assert digest not in {r["digest"] for r in _listed(root)}


def test_an_ambiguous_prefix_names_its_candidates(tmp_path: Path) -> None:
    """Two stored indexes whose digests share 13 hex digits (records written by hand: no real
    pair of digests is that close)."""
    store = tmp_path / "store"
    (store / "blobs" / "sha256").mkdir(parents=True)
    (store / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    shared = "0123456789abc"
    digests = [f"sha256:{shared}{tail * 51}" for tail in ("d", "e")]
    entries = [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": 100,
                "artifactType": "application/vnd.amazon.soci.index.v1+json",
                "annotations": {"dev.socikit.image-ref": "docker.io/library/x:1"}} for d in digests]
    (store / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": entries}))
    result = _invoke(tmp_path, "index", "info", shared)
    assert result.exit_code == 1
    assert f"{shared} matches 2 indexes" in result.output and all(d in result.output for d in digests)
    # One more digit is unique: the record goes (its blob was never there), the other stays.
    assert _invoke(tmp_path, "index", "rm", shared + "d").exit_code == 0
    assert [e["digest"] for e in json.loads((store / "index.json").read_bytes())["manifests"]] == digests[1:]
    result = _invoke(tmp_path, "index", "info", shared)
    assert result.exit_code == 1 and "is recorded but its blob is missing" in result.output


def test_resolve_digest_is_exact_about_what_it_matched() -> None:
    candidates = ["sha256:" + "a" * 64, "sha256:" + "a" * 12 + "b" * 52, "sha256:" + "c" * 64]
    assert resolve_digest("c" * 12, candidates, what="ztoc", where="here") == candidates[2]
    assert resolve_digest("sha256:" + "A" * 13, candidates, what="ztoc", where="here") == candidates[0]
    with pytest.raises(ImageError, match="matches 2 ztocs in here: sha256:a+, sha256:a+b+; give more digits"):
        resolve_digest("a" * 12, candidates, what="ztoc", where="here")
    with pytest.raises(ImageError, match="^no ztoc matches d{12} in here$"):
        resolve_digest("d" * 12, candidates, what="ztoc", where="here")
    with pytest.raises(ImageError, match="at least 12 hex digits"):
        resolve_digest("sha256:aaaa", candidates, what="ztoc", where="here")
    with pytest.raises(ImageError, match="is not a digest"):
        resolve_digest("latest", candidates, what="ztoc", where="here")


@pytest.mark.parametrize(
    ("query", "recorded", "manifest", "expected"),
    [
        ("docker://localhost:5000/app:1", "localhost:5000/app:1", "", True),
        ("localhost:5000/app", "localhost:5000/app:latest", "", True),
        ("alpine", "docker.io/library/alpine:latest", "", True),
        ("localhost:5000/app:2", "localhost:5000/app:1", "", False),
        ("localhost:5000/other:1", "localhost:5000/app:1", "", False),
        # A digest matches the digest the record was created by, or its platform manifest.
        ("localhost:5000/app@sha256:" + "a" * 64, "localhost:5000/app@sha256:" + "a" * 64, "", True),
        ("docker://localhost:5000/app@sha256:" + "b" * 64, "localhost:5000/app:1", "sha256:" + "b" * 64, True),
        ("localhost:5000/app@" + "b" * 12, "localhost:5000/app:1", "sha256:" + "b" * 64, True),
        ("localhost:5000/app@sha256:" + "b" * 12, "localhost:5000/app:1", "sha256:" + "c" * 64, False),
        ("localhost:5000/app:1@sha256:" + "b" * 64, "localhost:5000/app:1", "sha256:" + "c" * 64, False),
        # `oci:DIR` names the only image there: any tag matches.
        ("oci:/images/a", "oci:/images/a:latest", "", True),
        ("oci:/images/a:v2", "oci:/images/a", "", True),
        ("oci:/images/a:v2", "oci:/images/a:latest", "", False),
        ("oci:/images/b", "oci:/images/a:latest", "", False),
    ],
)
def test_reference_queries_are_normalized(query: str, recorded: str, manifest: str, expected: bool) -> None:
    assert RefQuery.parse(query).matches(recorded, manifest) is expected


def test_a_relative_layout_reference_is_recorded_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "root"
    _copy(tmp_path, "here")
    monkeypatch.chdir(tmp_path)
    _create(root, "oci:here:latest")
    assert {r["image_ref"] for r in _listed(root)} == {f"oci:{tmp_path / 'here'}:latest"}
    monkeypatch.chdir(tmp_path / "here")
    assert len(_listed(root, "--ref", "oci:.:latest")) == 2
    assert len(_listed(root, "--ref", f"oci:{tmp_path / 'here'}")) == 2


def test_rm_without_arguments_says_what_is_missing(tmp_path: Path) -> None:
    result = _invoke(tmp_path, "index", "rm")
    assert result.exit_code == 2
    assert "nothing to remove" in result.output and "--ref" in result.output and "not both" not in result.output


def test_rm_with_digest_and_ref_removes_only_that_pair(tmp_path: Path) -> None:
    root = tmp_path / "root"
    first, second = f"oci:{_copy(tmp_path, 'a')}:latest", f"oci:{_copy(tmp_path, 'b')}:latest"
    _create(root, first)
    _create(root, second)
    digest = str(_listed(root)[0]["digest"])
    assert _invoke(root, "index", "rm", digest[:20], "--ref", second).exit_code == 0
    assert {(r["digest"], r["image_ref"]) for r in _listed(root) if r["digest"] == digest} == {(digest, first)}
    missing = _invoke(root, "index", "rm", digest, "--ref", second)
    assert missing.exit_code == 1 and "no SOCI index" in missing.output


def test_list_prints_whole_digests_piped_and_on_a_narrow_terminal(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _create(root, f"oci:{MULTI.input_dir}:latest")
    rows = _listed(root)
    wanted = {str(r["digest"]) for r in rows} | {str(r["manifest"]) for r in rows}
    piped = _invoke(root, "index", "list")
    assert piped.exit_code == 0 and "…" not in piped.stdout
    assert set(DIGEST.findall(piped.stdout)) == wanted
    assert len(piped.stdout.splitlines()) == 3  # header and one line per record

    for columns in (80, 60):
        code, shown = run_on_terminal("index", "list", root=root, columns=columns)
        assert code == 0, shown
        assert "…" not in shown
        lines = shown.splitlines()
        # Each index digest alone on its line: whole, and pasted back it works.
        assert {line for line in lines if line.startswith("sha256:")} == {str(r["digest"]) for r in rows}
        assert set(DIGEST.findall(shown)) == wanted
    code, shown = run_on_terminal("index", "list", root=root, columns=400)
    assert code == 0 and len(shown.splitlines()) == 3 and set(DIGEST.findall(shown)) == wanted  # it fits: a table

    code, shown = run_on_terminal("ztoc", "list", root=root, columns=80)
    ztocs = {z["digest"] for z in json.loads(_invoke(root, "ztoc", "list", "--json").stdout)}
    assert code == 0 and {line for line in shown.splitlines() if line.startswith("sha256:")} == ztocs
