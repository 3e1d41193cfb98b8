"""socikit is layered in tiers (docs/design.md): a module imports only from lower tiers, from its own
package, or through an exception listed here with its reason. The check walks every module's
syntax tree, so imports inside functions and under `if TYPE_CHECKING:` count like any other;
imports by string (`importlib.import_module`, the lazy re-exports of package `__init__`s) are not
seen. A second check forbids import cycles between modules."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.vectors import REPO_ROOT

# unit (package or module) -> tier. Every module of socikit must fall under one of these.
TIERS: dict[str, int] = {
    # T0: the base every tier may use
    "socikit": 0,  # the package itself: re-exports by name only (lazy), imports __about__ and _lazy
    "socikit.__about__": 0,
    "socikit._lazy": 0,
    "socikit.errors": 0,
    "socikit.atomic": 0,
    "socikit.settings": 0,
    "socikit.tomlconfig": 0,
    "socikit.jsonlog": 0,
    "socikit.daemonroot": 0,
    "socikit.oci": 0,
    # T1: the ztoc format and engine
    "socikit.ztoc": 1,
    # T2: SOCI indexes, the v2 conversion, SOCI index discovery
    "socikit.soci": 2,
    # T3: where images and snapshots live
    "socikit.content": 3,
    "socikit.registry": 3,
    "socikit.containerd": 3,
    # T4: reference -> store (the dispatcher over content and registry); lazily served layers
    "socikit.transports": 4,
    "socikit.lazy": 4,
    # T5: what runs over them
    "socikit.pipeline": 5,
    "socikit.validate": 5,
    "socikit.snapshotter": 5,
    "socikit.store": 5,
    # T6: build-system integrations (docker buildx, the builder container) over the pipeline
    "socikit.integrations": 6,
    # T7: the command line; nothing imports it
    "socikit.cli": 7,
    "socikit.__main__": 7,
}

# Imports allowed between different units of one tier: (importing unit, imported module prefix).
# Units of T0 may import each other freely (cycles are caught by the cycle check).
SAME_TIER_ALLOWED: dict[tuple[str, str], str] = {
    ("socikit.registry", "socikit.content.base"): "registry sources and sinks implement content's protocols",
    ("socikit.pipeline", "socikit.validate.prewrite"): "convert/create/push check their output before "
    "writing it; validate never imports pipeline",
    ("socikit.__main__", "socikit.cli"): "`python -m socikit` runs the CLI",
}

# Import cycles between modules that still exist; each one names who removes it.
KNOWN_CYCLES: dict[frozenset[str], str] = {}

PACKAGE_DIR = REPO_ROOT / "socikit"


@dataclass(frozen=True)
class Import:
    importer: str  # module name
    imported: str  # module name (a submodule when `from pkg import sub` names one)
    line: int


def module_names(package_dir: Path, package: str) -> dict[str, Path]:
    """Module name -> file for every .py file under `package_dir` (packages by their __init__)."""
    out = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = [package, *path.relative_to(package_dir).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports_of(name: str, path: Path, modules: dict[str, Path], package: str) -> Iterator[Import]:
    """Every import of a module of `package` in the file, wherever it stands in the code."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(name, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                if not is_package:
                    base.pop()
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield Import(name, sub if sub in modules else target, node.lineno)
    return


def unit_of(module: str, tiers: dict[str, int], package: str) -> str | None:
    """The longest unit of the tier table that `module` is or lies under (the top package itself
    is a unit of its own: its submodules are not under it)."""
    best = None
    for unit in tiers:
        under = module == unit or (unit != package and module.startswith(unit + "."))
        if under and (best is None or len(unit) > len(best)):
            best = unit
    return best


def layering_violations(package_dir: Path, package: str, tiers: dict[str, int],
                        allowed: dict[tuple[str, str], str]) -> list[str]:
    """One line per import that breaks the tier table, and per module the table does not place."""
    modules = module_names(package_dir, package)
    problems = []
    for name, path in modules.items():
        unit = unit_of(name, tiers, package)
        if unit is None:
            problems.append(f"{name}: not in the tier table")
            continue
        for imp in imports_of(name, path, modules, package):
            if imp.imported != package and not imp.imported.startswith(package + "."):
                continue
            target = unit_of(imp.imported, tiers, package)
            if target is None:
                problems.append(f"{name}:{imp.line} imports {imp.imported}, which is not in the tier table")
                continue
            if target == unit or tiers[target] < tiers[unit] or tiers[unit] == tiers[target] == 0:
                continue
            if any(unit == a and (imp.imported == b or imp.imported.startswith(b + ".")) for a, b in allowed):
                continue
            problems.append(
                f"{name}:{imp.line} imports {imp.imported}: T{tiers[unit]} {unit} may not import "
                f"T{tiers[target]} {target}"
            )
    return problems


def import_cycles(package_dir: Path, package: str) -> list[frozenset[str]]:
    """The modules of each import cycle (strongly connected components of more than one module)."""
    modules = module_names(package_dir, package)
    graph = {
        name: {i.imported for i in imports_of(name, path, modules, package) if i.imported in modules and
               i.imported != name}
        for name, path in modules.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(frozenset(component))

    for name in graph:
        if name not in index:
            visit(name)
    return cycles


# --- the checks on socikit ---------------------------------------------------------------------

def test_every_import_follows_the_tier_table() -> None:
    assert layering_violations(PACKAGE_DIR, "socikit", TIERS, SAME_TIER_ALLOWED) == []


def test_no_import_cycles_but_the_known_ones() -> None:
    cycles = set(import_cycles(PACKAGE_DIR, "socikit"))
    assert cycles - KNOWN_CYCLES.keys() == set()


def test_known_cycles_are_still_there() -> None:
    """An exception that is no longer needed must go (its entry would hide a new cycle)."""
    cycles = set(import_cycles(PACKAGE_DIR, "socikit"))
    assert KNOWN_CYCLES.keys() <= cycles


def test_the_design_document_shows_this_table() -> None:
    """docs/design.md lists the same units in the same tiers (rows `| T<n> | `unit`, … | …`)."""
    text = (REPO_ROOT / "docs" / "design.md").read_text()
    shown: dict[str, int] = {}
    for match in re.finditer(r"^\| T(\d) \| ([^|]+)\|", text, re.MULTILINE):
        for unit in re.findall(r"`([\w.]+)`", match[2]):
            shown[unit] = int(match[1])
    assert shown == TIERS


# --- the checker catches what it should ----------------------------------------------------------

def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


SYNTHETIC_TIERS = {"pkg": 0, "pkg.low": 0, "pkg.content": 3, "pkg.registry": 3, "pkg.pipeline": 5,
                   "pkg.snapshotter": 5, "pkg.cli": 6}


def test_checker_finds_imports_across_tiers_wherever_they_stand(tmp_path: Path) -> None:
    pkg = _tree(tmp_path / "pkg", {
        "__init__.py": "",
        "low.py": "import os\n",
        "content/__init__.py": "",
        "content/base.py": "from pkg.low import x\n",  # downward: fine
        "content/open.py": "def f():\n    from pkg.registry.client import Client\n",  # same tier, forbidden
        "registry/__init__.py": "",
        "registry/client.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..pipeline import run\n",
        "pipeline/__init__.py": "",
        "pipeline/run.py": "from pkg.content import base\nfrom pkg import cli\n",
        "snapshotter/__init__.py": "from pkg.pipeline.run import go\n",
        "cli/__init__.py": "from pkg.pipeline import run\n",  # the top tier imports anything
        "stray.py": "",
    })
    problems = layering_violations(pkg, "pkg", SYNTHETIC_TIERS, {})
    assert sorted(p.split(":")[0] + ":" + p.split(":")[1].split()[0] for p in problems) == [
        "pkg.content.open:2",
        "pkg.pipeline.run:2",
        "pkg.registry.client:3",
        "pkg.snapshotter:1",
        "pkg.stray:not",
    ]
    assert any("T3 pkg.content may not import T3 pkg.registry" in p for p in problems)
    assert any("T5 pkg.snapshotter may not import T5 pkg.pipeline" in p for p in problems)
    assert any("T5 pkg.pipeline may not import T6 pkg.cli" in p for p in problems)
    allowed = {("pkg.content", "pkg.registry.client"): "a documented exception"}
    assert not any(p.startswith("pkg.content.open") for p in layering_violations(pkg, "pkg", SYNTHETIC_TIERS, allowed))


def test_checker_finds_cycles(tmp_path: Path) -> None:
    pkg = _tree(tmp_path / "pkg", {
        "__init__.py": "",
        "a.py": "from pkg import b\n",
        "b.py": "def f():\n    import pkg.a\n",
        "c.py": "from pkg.a import x\n",
    })
    assert import_cycles(pkg, "pkg") == [frozenset({"pkg.a", "pkg.b"})]
