"""The curated library surface: each package's `__all__` is pinned here name by name, so adding,
removing or renaming a public name is a deliberate change of this test too; every name resolves,
and the top-level names are the objects documented for them."""

from __future__ import annotations

import importlib

import pytest

import socikit
from tests.vectors import REPO_ROOT

# package -> its public names, sorted as `__all__` keeps them. A package that defines `__all__`
# must be listed here; one that is listed must define exactly these names.
PUBLIC_NAMES: dict[str, list[str]] = {
    "socikit": [
        "ConvertOptions",
        "ImageReference",
        "Ztoc",
        "__version__",
        "build_soci_index",
        "build_ztoc",
        "convert_image",
        "dumps_ztoc",
        "loads_ztoc",
        "open_sink",
        "open_source",
        "parse_reference",
        "read_file",
        "validate_image",
    ],
    "socikit.cli": ["app", "main", "run"],
    "socikit.registry": [
        "Credentials",
        "RegistryClient",
        "RegistryOptions",
        "RegistrySink",
        "RegistrySource",
        "RegistryStatusError",
        "RetryPolicy",
        "load_docker_credentials",
        "open_registry_sink",
        "open_registry_source",
        "parse_user",
        "referrers_tag",
    ],
    "socikit.validate": [
        "CHECK_DESCRIPTIONS",
        "CHECK_NAMES",
        "SCHEMA_NAMES",
        "CheckResult",
        "ManifestVerdict",
        "Report",
        "Summary",
        "load_schema",
        "schema_errors",
        "validate_image",
    ],
}

# Where each top-level name comes from (module, attribute).
TOP_LEVEL_ORIGINS = {
    "ConvertOptions": ("socikit.pipeline.convert", "ConvertOptions"),
    "ImageReference": ("socikit.content.reference", "ImageReference"),
    "Ztoc": ("socikit.ztoc.model", "Ztoc"),
    "build_soci_index": ("socikit.soci.index", "build_soci_index"),
    "build_ztoc": ("socikit.ztoc.builder", "build_ztoc"),
    "convert_image": ("socikit.pipeline.convert", "convert_image"),
    "dumps_ztoc": ("socikit.ztoc.serialize", "dumps"),
    "loads_ztoc": ("socikit.ztoc.serialize", "loads"),
    "open_sink": ("socikit.transports", "open_sink"),
    "open_source": ("socikit.transports", "open_source"),
    "parse_reference": ("socikit.content.reference", "parse_reference"),
    "read_file": ("socikit.ztoc.extract", "read_file"),
    "validate_image": ("socikit.validate.image", "validate_image"),
}


def _packages() -> list[str]:
    return sorted(
        ".".join(init.parent.relative_to(REPO_ROOT).parts) for init in (REPO_ROOT / "socikit").rglob("__init__.py")
    )


def test_every_package_with_a_public_surface_is_pinned() -> None:
    packages = _packages()
    assert "socikit.ztoc" in packages and len(packages) >= 10
    declared = {name for name in packages if hasattr(importlib.import_module(name), "__all__")}
    assert declared == set(PUBLIC_NAMES)


@pytest.mark.parametrize("package", sorted(PUBLIC_NAMES))
def test_public_names_are_the_pinned_ones_and_resolve(package: str) -> None:
    module = importlib.import_module(package)
    assert list(module.__all__) == PUBLIC_NAMES[package]
    for name in PUBLIC_NAMES[package]:
        assert getattr(module, name) is not None, name
    namespace: dict[str, object] = {}
    exec(f"from {package} import *", namespace)  # what `import *` gives a user
    assert set(namespace) - {"__builtins__"} == set(PUBLIC_NAMES[package])


def test_top_level_names_are_the_documented_objects() -> None:
    assert set(TOP_LEVEL_ORIGINS) == set(PUBLIC_NAMES["socikit"]) - {"__version__"}
    for name, (module, attribute) in TOP_LEVEL_ORIGINS.items():
        assert getattr(socikit, name) is getattr(importlib.import_module(module), attribute), name
    assert isinstance(socikit.__version__, str) and socikit.__version__[0].isdigit()


def test_unknown_attribute() -> None:
    with pytest.raises(AttributeError, match="no_such_thing"):
        socikit.no_such_thing  # noqa: B018
