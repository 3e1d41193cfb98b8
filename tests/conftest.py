"""Every test runs against its own socikit root, never the machine's.

Without this, any `convert`/`create` a test runs without `--root`/`--no-cache` reads and writes
the real ztoc cache and local store (/var/lib/socikit for root): results would depend on what an
earlier run, or another checkout's run, left there, and the suite would change the machine.

- the whole session (module and session fixtures, subprocesses) gets a `SOCIKIT_ROOT` of its own;
- each test gets a fresh one on top (`socikit_root`, autouse);
- an audit hook records any access under the real roots made in this process, and fails the test
  that made it;
- the real roots are compared before and after the session (worker processes and subprocesses
  included), and a change fails the run.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# The roots `socikit.settings.default_root()` picks when $SOCIKIT_ROOT is unset (the guard's
# own test points it at directories of its own through $SOCIKIT_TESTS_GUARDED_ROOTS).
_GUARDED = os.environ.get("SOCIKIT_TESTS_GUARDED_ROOTS")
REAL_ROOTS = (
    tuple(Path(p) for p in _GUARDED.split(os.pathsep))
    if _GUARDED
    else (Path("/var/lib/socikit"), Path.home() / ".local" / "share" / "socikit")
)
_PREFIXES = tuple(str(root) for root in REAL_ROOTS)

_WATCHED_EVENTS = frozenset({
    "open", "os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.link", "os.symlink", "os.listdir",
    "os.scandir", "os.truncate", "os.chmod", "os.chown", "os.utime", "shutil.rmtree",
})  # fmt: skip
_touched: list[str] = []
_watching = [True]


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event not in _WATCHED_EVENTS or not args or not _watching[0]:
        return
    for arg in args[:2]:  # a rename's source and destination
        if not isinstance(arg, str | bytes | os.PathLike):
            continue
        path = os.fsdecode(arg)
        if not path.startswith("/"):
            path = os.path.abspath(path)
        if path.startswith(_PREFIXES):
            _touched.append(f"{event} {path}")


sys.addaudithook(_audit)


def snapshot(root: Path) -> dict[str, tuple[int, int, int, int]] | None:
    """(mode, size, inode, mtime_ns) of everything under `root`; None when it does not exist."""
    if not root.exists():
        return None
    found: dict[str, tuple[int, int, int, int]] = {}
    for directory, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(directory) / name
            st = path.lstat()
            found[str(path.relative_to(root))] = (st.st_mode, st.st_size, st.st_ino, st.st_mtime_ns)
    st = root.lstat()
    found["."] = (st.st_mode, 0, st.st_ino, st.st_mtime_ns)
    return found


def describe_changes(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[str]:
    if before is None or after is None:
        return [] if before == after else ["created" if before is None else "deleted"]
    changes = [f"+ {p}" for p in sorted(after.keys() - before.keys())]
    changes += [f"- {p}" for p in sorted(before.keys() - after.keys())]
    changes += [f"~ {p}" for p in sorted(before.keys() & after.keys()) if before[p] != after[p]]
    return changes


@pytest.fixture(scope="session", autouse=True)
def real_roots_untouched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A session-wide $SOCIKIT_ROOT; the real roots are exactly as before when the session ends."""
    _watching[0] = False
    before = {root: snapshot(root) for root in REAL_ROOTS}
    _watching[0] = True
    previous = os.environ.get("SOCIKIT_ROOT")
    os.environ["SOCIKIT_ROOT"] = str(tmp_path_factory.mktemp("socikit-session-root"))
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("SOCIKIT_ROOT", None)
        else:
            os.environ["SOCIKIT_ROOT"] = previous
        _watching[0] = False
        changed = {root: describe_changes(before[root], snapshot(root)) for root in REAL_ROOTS}
        _watching[0] = True
        changed = {root: lines for root, lines in changed.items() if lines}
        assert not changed, f"the test session changed socikit's real root(s): {changed}"


@pytest.fixture(autouse=True)
def socikit_root(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """This test's own socikit root (ztoc cache and local store), also seen by its subprocesses."""
    root = tmp_path_factory.mktemp("socikit-root")
    monkeypatch.setenv("SOCIKIT_ROOT", str(root))
    yield root
    # Also what module fixtures set up for this test did: nothing is cleared at set-up.
    touched, _touched[:] = list(_touched), []
    assert not touched, f"the test reached socikit's real root: {touched[:5]}"
