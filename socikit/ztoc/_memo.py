"""Structures derived from a ztoc (its span table, its path index), built once per Ztoc object.

A Ztoc is immutable, so what is derived from it never goes stale; the cache holds the ztoc only
weakly and forgets the derived value when the ztoc is collected. Keyed by identity: hashing a
Ztoc would hash its whole TOC."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

from socikit.ztoc.model import Ztoc

T = TypeVar("T")


class PerZtoc(Generic[T]):
    """`cache(ztoc)`: `build(ztoc)` on the first call for that ztoc object, the same value after.

    No lock: dict reads and writes are atomic, and two threads racing on a new ztoc at worst
    both build it (the values are equal)."""

    def __init__(self, build: Callable[[Ztoc], T]) -> None:
        self._build = build
        self._values: dict[int, tuple[weakref.ref[Ztoc], T]] = {}

    def __call__(self, ztoc: Ztoc) -> T:
        key = id(ztoc)
        hit = self._values.get(key)
        if hit is not None and hit[0]() is ztoc:
            return hit[1]
        value = self._build(ztoc)  # may raise: nothing is cached then
        values = self._values

        def forget(ref: weakref.ref[Ztoc], key: int = key) -> None:
            # Runs while the ztoc is being freed, before its id can be reused.
            current = values.get(key)
            if current is not None and current[0] is ref:
                values.pop(key, None)

        values[key] = (weakref.ref(ztoc, forget), value)
        return value
