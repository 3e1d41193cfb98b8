"""The curated library surface in `socikit.__all__` resolves and stays sorted."""

from __future__ import annotations

import socikit


def test_every_exported_name_resolves() -> None:
    assert socikit.__all__ == sorted(socikit.__all__)
    for name in socikit.__all__:
        assert getattr(socikit, name) is not None, name


def test_unknown_attribute() -> None:
    try:
        socikit.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")
