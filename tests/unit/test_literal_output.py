"""User data is printed as typed, never read as rich markup or emoji codes: a path holding
`[red]x[/red]` keeps it, and `:abcd:` stays text instead of becoming an emoji. Every command's
error line and normal output that can carry user data, piped (plain lines) and on a terminal
(through rich)."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from socikit.cli.progress import ProgressRenderer
from socikit.oci.descriptor import Descriptor
from socikit.pipeline.events import LayerFinished, LayerOutcome, LayerStarted, Message
from tests.cli import run_socikit
from tests.terminal import run_on_terminal
from tests.vectors import all_vectors

SINGLE = next(v for v in all_vectors() if v.name == "tricky-pax")
MARKUP = "[red]x[/red]"
EMOJI_CODE = ":abcd:"
TAG = "v:abcd:1"  # an OCI ref.name may hold ':' between its components
SMALL = ["--span-size", "65536", "--min-layer-size", "0", "--progress", "none"]


def _both(*args: str, root: Path | None) -> list[tuple[int, str]]:
    """(exit code, everything shown) piped, then on an 80-column terminal."""
    piped = run_socikit(*args, root=root)
    return [(piped.returncode, piped.stdout + piped.stderr), run_on_terminal(*args, root=root)]


def _literal(shown: str, *texts: str) -> None:
    assert "\U0001f521" not in shown, shown  # 🔡, rich's emoji for ":abcd:"
    for text in texts:
        assert text in shown, (text, shown)


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    """A single-manifest image in a directory whose path holds markup, tagged `v:abcd:1`."""
    target = tmp_path / MARKUP / "image"
    shutil.copytree(SINGLE.input_dir, target)
    index = json.loads((target / "index.json").read_bytes())
    index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] = TAG
    (target / "index.json").write_text(json.dumps(index))
    return target


def test_convert_create_validate_push_errors(tmp_path: Path, layout: Path) -> None:
    missing = f"oci:{layout}:v:abcd:2"  # no such tag
    for argv in (["convert", *SMALL, missing, f"oci:{tmp_path / 'out'}"], ["create", *SMALL, missing],
                 ["validate", f"{layout}:{TAG}"], ["push", "--v1", f"oci:{layout}:{TAG}"]):
        for code, shown in _both(*argv, root=None if argv[0] == "validate" else tmp_path / "root"):
            assert code == 1, shown
            assert shown.lstrip().startswith("error:") and len(shown.strip().splitlines()) == 1, shown
            _literal(shown, MARKUP, str(layout))
            if argv[0] != "push":
                _literal(shown, EMOJI_CODE)


def test_validate_report(layout: Path) -> None:
    """A check that fails on user data (the tag is not there) shows it in the report's table
    (a terminal wide enough for the table not to wrap the reason)."""
    argv = ("validate", f"oci:{layout}:v:abcd:2")
    piped = run_socikit(*argv)
    for code, shown in [(piped.returncode, piped.stdout + piped.stderr), run_on_terminal(*argv, columns=500)]:
        assert code == 1, shown
        _literal(shown, str(layout), "v:abcd:2")


def test_convert_in_place_note(tmp_path: Path, layout: Path) -> None:
    ref = f"oci:{layout}:{TAG}"
    result = run_socikit("convert", *SMALL, ref, ref, root=tmp_path / "root")
    assert result.returncode == 0, result.stderr
    _literal(result.stderr, f"note: the tag {ref} moved from")


def test_index_list_info_rm(tmp_path: Path, layout: Path) -> None:
    root = tmp_path / "root"
    ref = f"oci:{layout}:{TAG}"
    assert run_socikit("create", *SMALL, ref, root=root).returncode == 0
    for columns in (400, 80):
        code, shown = run_on_terminal("index", "list", root=root, columns=columns)
        assert code == 0, shown
        _literal(shown, ref)
    piped = run_socikit("index", "list", root=root)
    assert piped.returncode == 0 and ref in piped.stdout
    for code, shown in _both("index", "info", f"{MARKUP}{EMOJI_CODE}", root=root):
        assert code == 1
        _literal(shown, f"{MARKUP}{EMOJI_CODE} is not a digest")
    digest = json.loads(run_socikit("index", "list", "--json", root=root).stdout)[0]["digest"]
    code, shown = run_on_terminal("index", "rm", "--ref", ref, root=root)
    assert code == 0, shown
    _literal(shown, f"removed {digest} for {ref}")


def _layer_with_a_markup_name(tmp_path: Path) -> Path:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in ("[red]x[", f"[red]x[/red]{EMOJI_CODE}"):
            info = tarfile.TarInfo(name)
            if name.endswith("["):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = 5
                tar.addfile(info, io.BytesIO(b"hello"))
    blob = tmp_path / "layer.tar.gz"
    blob.write_bytes(gzip.compress(raw.getvalue()))
    return blob


def test_ztoc_info_and_get_file(tmp_path: Path) -> None:
    blob = _layer_with_a_markup_name(tmp_path)
    ztoc = tmp_path / "layer.ztoc"
    assert run_socikit("ztoc", "build", str(blob), "-o", str(ztoc)).returncode == 0
    for code, shown in _both("ztoc", "info", str(ztoc), root=tmp_path / "root"):
        assert code == 0, shown
        _literal(shown, f"[red]x[/red]{EMOJI_CODE}")
    for code, shown in _both("ztoc", "get-file", str(ztoc), str(blob), f"no/{MARKUP}{EMOJI_CODE}",
                             root=tmp_path / "root"):
        assert code == 1, shown
        _literal(shown, f"no/{MARKUP}{EMOJI_CODE}")
    for code, shown in _both("ztoc", "info", str(tmp_path / f"{MARKUP}{EMOJI_CODE}"), root=tmp_path / "root"):
        assert code == 1, shown
        _literal(shown, f"{MARKUP}{EMOJI_CODE}")
    for code, shown in _both("ztoc", "info", "sha256:abcd", root=tmp_path / "root"):
        assert code == 1, shown
        _literal(shown, "sha256:abcd: no such file")


def test_the_live_progress_display_prints_messages_literally(capsys: pytest.CaptureFixture[str]) -> None:
    layer = Descriptor(media_type="application/vnd.oci.image.layer.v1.tar+gzip", digest="sha256:" + "a" * 64, size=1)
    with ProgressRenderer("rich") as renderer:
        renderer(LayerStarted(layer))
        renderer(LayerFinished(LayerOutcome(layer, None, skipped=f"{MARKUP} {EMOJI_CODE}")))
        renderer(Message(f"note: {MARKUP} {EMOJI_CODE}"))
    shown = capsys.readouterr().err
    _literal(shown, f"skipped, {MARKUP} {EMOJI_CODE}", f"note: {MARKUP} {EMOJI_CODE}")
