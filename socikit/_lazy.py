"""Package attributes resolved on first use (PEP 562), so importing a package does not import
everything it re-exports (the registry stack, jsonschema and the pipeline are slow to load)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str | tuple[str, str]]) -> Callable[[str], Any]:
    """A module `__getattr__` for `package`: `exports` maps a public name to the module that
    defines it, or to (module, attribute) when the names differ."""

    def __getattr__(name: str) -> Any:
        target = exports.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, attr = target if isinstance(target, tuple) else (target, name)
        return getattr(importlib.import_module(module), attr)

    return __getattr__
