"""Start-up cost is paid on every command: what a command does not use is not imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.vectors import REPO_ROOT, all_vectors

MULTI = next(v for v in all_vectors() if v.name == "multi-platform")

# Run a command in a fresh interpreter and report which modules it loaded, in all and when it
# first forked (the layer workers: what is imported before is paid before the first layer is read).
_PROBE = """
import json, sys
sys.argv = ["socikit", *json.loads(sys.argv[1])]
at_fork = []
def first_fork(event, args):
    if event == "os.fork" and not at_fork:
        at_fork.append(sorted(sys.modules))
sys.addaudithook(first_fork)
from socikit.cli import main
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code or 0
print("MODULES=" + json.dumps(sorted(sys.modules)), file=sys.stderr)
if at_fork:
    print("FORK_MODULES=" + json.dumps(at_fork[0]), file=sys.stderr)
print("EXIT=" + str(code), file=sys.stderr)
"""

HEAVY = ("pydantic", "rich", "jsonschema", "oras", "requests", "python_on_whales", "socikit.registry")
# What talking to a registry takes (socikit.registry.options, plain data, is not part of it).
REGISTRY_STACK = ("requests", "urllib3", "charset_normalizer", "oras", "socikit.registry.auth",
                  "socikit.registry.client", "socikit.registry.store")  # fmt: skip


def loaded_and_at_fork(*argv: str) -> tuple[set[str], set[str] | None]:
    """Modules a successful `socikit ARGV` loaded: in all, and when it first forked (None if it
    did not)."""
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(list(argv))],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    lines = result.stderr.splitlines()
    assert "EXIT=0" in lines, result.stderr[-2000:]  # the command itself succeeded
    found = {key: set(json.loads(x.split("=", 1)[1])) for x in lines for key in ("MODULES", "FORK_MODULES")
             if x.startswith(key + "=")}  # fmt: skip
    return found["MODULES"], found.get("FORK_MODULES")


def _loaded(*argv: str) -> set[str]:
    return loaded_and_at_fork(*argv)[0]


def _heavy(modules: set[str]) -> set[str]:
    return {m for m in modules if m.split(".")[0] in HEAVY or m.startswith(HEAVY)}


def test_version_loads_no_library_stack() -> None:
    modules = _loaded("--version")
    assert not _heavy(modules)
    assert not {m for m in modules if m.startswith(("socikit.pipeline", "socikit.ztoc", "socikit.validate"))}


def test_ztoc_build_loads_the_builder_only(tmp_path: Path) -> None:
    import gzip
    import io
    import tarfile

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    blob = tmp_path / "layer.tar.gz"
    blob.write_bytes(gzip.compress(raw.getvalue()))
    modules = _loaded("ztoc", "build", str(blob), "-o", str(tmp_path / "out.ztoc"))  # a plain summary line
    assert (tmp_path / "out.ztoc").stat().st_size > 0
    assert "socikit.ztoc.builder" in modules
    assert not _heavy(modules)
    assert not {m for m in modules if m.startswith(("socikit.pipeline", "socikit.validate", "socikit.content"))}
    # The builder hashes natively: neither hashlib nor `secrets` (whose hmac loads libcrypto, ~4 ms);
    # the engine looks zlib-ng's inflate up itself: no ctypes (~5 ms with the function prototypes).
    assert not {"hashlib", "_hashlib", "hmac", "secrets", "ctypes", "socikit.ztoc.compression._zran"} & modules


@pytest.mark.parametrize("argv", [("ztoc", "--help"), ("convert", "--help"), ("validate", "--help")])
def test_help_loads_no_library_stack(argv: tuple[str, ...]) -> None:
    assert not {m for m in _heavy(_loaded(*argv)) if not m.startswith("rich")}  # help is drawn by rich


def test_a_command_registers_only_its_own_module(tmp_path: Path) -> None:
    """typer builds its command tree from every registered command on each run: a run imports the
    invoked command's module only; --help of the whole CLI still lists every command."""
    commands = {m for m in _loaded("index", "list", "--root", str(tmp_path)) if m.startswith("socikit.cli.")}
    own = {"socikit.cli.apps", "socikit.cli.console", "socikit.cli.index", "socikit.cli.registry_options"}
    assert commands <= own, commands
    assert "socikit.cli.index" in commands
    everything = {m for m in _loaded("--help") if m.startswith("socikit.cli.")}
    assert {"socikit.cli.convert", "socikit.cli.snapshotter", "socikit.cli.store", "socikit.cli.ztoc"} <= everything


def registry_stack(modules: set[str]) -> set[str]:
    return {m for m in modules if m.split(".")[0] in REGISTRY_STACK or m.startswith(REGISTRY_STACK)}


def test_convert_between_layouts_loads_no_registry_stack(tmp_path: Path) -> None:
    """An OCI layout to OCI layout conversion never loads requests or oras, nor the local store;
    the pre-write checks are imported once the layer workers are forked, while they index, and
    a result that passes them never imports jsonschema (socikit's quick schema verdict)."""
    modules, at_fork = loaded_and_at_fork(
        "convert", "--all-platforms", "--span-size", "65536", "--min-layer-size", "0", "--jobs", "2", "--no-cache",
        f"oci:{MULTI.input_dir}:latest", f"oci:{tmp_path / 'out'}:soci",
    )  # fmt: skip
    assert (tmp_path / "out" / "index.json").is_file()
    assert not registry_stack(modules), registry_stack(modules)
    # The default progress (auto) on a stderr that is no terminal: plain lines, no rich.
    assert not {m for m in modules if m.split(".")[0] == "rich"}
    assert "socikit.pipeline.store" not in modules
    assert at_fork is not None  # several layers on two jobs: worker processes
    assert "socikit.validate.prewrite" in modules  # the result was checked ...
    assert not {m for m in at_fork if m.startswith("socikit.validate")}  # ... after the fork ...
    assert not {m for m in modules if m.startswith(("jsonschema", "referencing"))}  # ... without jsonschema


def test_what_start_up_imported_is_frozen_out_of_the_collector() -> None:
    """Objects made by start-up live until exit; `main` freezes them so that no full collection
    (during the run or at interpreter shutdown) walks them again."""
    probe = (
        "import gc, sys\nsys.argv = ['socikit', 'ztoc', '--help']\nfrom socikit.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\nprint('FROZEN=%d' % gc.get_freeze_count())"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
                         check=True).stdout  # fmt: skip
    frozen = int(out.rsplit("FROZEN=", 1)[1])
    assert frozen > 10_000, frozen  # typer, click and socikit's command modules (0 unfrozen)


def test_command_modules_give_typer_evaluated_annotations() -> None:
    """A command module under `from __future__ import annotations` makes typer compile and eval
    each annotation string on every run (socikit/cli/__init__.py)."""
    modules = sorted((REPO_ROOT / "socikit" / "cli").glob("*.py"))
    commands = [m for m in modules if "typer.Option(" in m.read_text() or "typer.Argument(" in m.read_text()]
    assert len(commands) >= 10
    assert [m.name for m in commands if "from __future__ import annotations" in m.read_text()] == []


# `socikit` as installed (socikit.cli.run): after the command, exit handlers and flushed output,
# then no interpreter teardown. The probe leaves an object whose finalizer only teardown runs.
_RUN_PROBE = """
import atexit, os, sys, threading, time
sys.argv = ["socikit", *sys.argv[1:]]

class Teardown:
    def __del__(self, write=os.write):  # a raw write: sys.stderr may be gone by then
        write(2, b"TEARDOWN\\n")

sys.left_for_teardown = Teardown()  # the interpreter clears sys's attributes when it tears down
atexit.register(lambda: sys.stderr.write("ATEXIT\\n"))
if sys.argv[1] == "--version" and sys.argv[2:] == ["THREAD"]:
    del sys.argv[2]
    def late():
        time.sleep(0.3)
        sys.stderr.write("THREAD\\n")
    threading.Thread(target=late).start()
from socikit.cli import run
run()
"""


def _run_executable(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _RUN_PROBE, *argv], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=60)  # fmt: skip


def test_the_executable_skips_teardown_but_not_exit_handlers_or_output(tmp_path: Path) -> None:
    ok = _run_executable("--version")
    assert ok.returncode == 0
    assert ok.stdout.startswith("socikit ") and ok.stdout.endswith("\n")  # the output, flushed
    assert "ATEXIT" in ok.stderr
    assert "TEARDOWN" not in ok.stderr
    failed = _run_executable("ztoc", "build", str(tmp_path / "missing.tar.gz"), "-o", str(tmp_path / "out.ztoc"))
    assert failed.returncode == 1
    assert failed.stderr.startswith("error: ") and "ATEXIT" in failed.stderr and "TEARDOWN" not in failed.stderr
    usage = _run_executable("ztoc", "build")
    assert usage.returncode == 2 and "ATEXIT" in usage.stderr and "TEARDOWN" not in usage.stderr


def test_the_executable_exits_as_usual_while_a_thread_is_running() -> None:
    """A thread still running is joined by the interpreter's own exit, and then teardown runs."""
    result = _run_executable("--version", "THREAD")
    assert result.returncode == 0
    assert result.stderr.index("THREAD") < result.stderr.index("ATEXIT") < result.stderr.index("TEARDOWN")


def test_python_m_socikit_is_the_executable() -> None:
    main_module = (REPO_ROOT / "socikit" / "__main__.py").read_text()
    assert "run()" in main_module
    assert 'socikit = "socikit.cli:run"' in (REPO_ROOT / "pyproject.toml").read_text()
