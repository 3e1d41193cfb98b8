"""The registry layer's shape: `referrers` sits over the client's public API (it never imports the
client, even for type checking, and touches no private attribute of anything it is handed), and
no module of socikit/registry reaches into oras-py's private members."""

from __future__ import annotations

import ast
from pathlib import Path

import oras.auth.token
import oras.provider

import socikit.registry

REGISTRY_DIR = Path(socikit.registry.__file__).parent


def _tree(name: str) -> ast.Module:
    return ast.parse((REGISTRY_DIR / name).read_text(), filename=name)


def _imported_modules(tree: ast.Module) -> set[str]:
    """Every module an import anywhere in the tree names (function-level and TYPE_CHECKING too)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _foreign_private_attributes(tree: ast.Module) -> list[str]:
    """`x._name` where x is not `self`/`cls` (dunders aside)."""
    hits = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
            hits.append(f"line {node.lineno}: .{node.attr}")
    return hits


def test_referrers_does_not_import_the_client() -> None:
    imported = _imported_modules(_tree("referrers.py"))
    assert not {m for m in imported if m.startswith("socikit.registry.client")}, imported
    # ... and the client does import referrers, so the direction is one way.
    assert "socikit.registry.referrers" in _imported_modules(_tree("client.py"))


def test_referrers_uses_only_public_attributes() -> None:
    assert _foreign_private_attributes(_tree("referrers.py")) == []


def test_modules_over_the_client_use_only_its_public_api() -> None:
    for name in ("store.py", "referrers.py", "pages.py", "options.py", "upload.py"):
        assert _foreign_private_attributes(_tree(name)) == [], name


def _oras_private_names() -> set[str]:
    registry = oras.provider.Registry(hostname="registry.invalid", auth_backend="token")
    token = oras.auth.token.TokenAuth()
    token.set_basic_auth("user", "password")
    names = set(dir(registry)) | set(vars(registry)) | set(dir(token)) | set(vars(token))
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def test_no_oras_private_member_is_used_or_overridden() -> None:
    private = _oras_private_names()
    assert "_do_paginated_request" in private  # the probe sees oras's private members at all
    for path in sorted(REGISTRY_DIR.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=path.name)
        used = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
        defined = {node.name for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
        assigned = {t.attr for node in ast.walk(tree) if isinstance(node, (ast.Assign, ast.AnnAssign))
                    for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
                    if isinstance(t, ast.Attribute)}
        assert not (used | defined | assigned) & private, (path.name, (used | defined | assigned) & private)
