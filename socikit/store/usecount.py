"""How many users each served layer has: containers/storage's use/release notifications.

containers/storage tells an additional layer store when it starts and stops using a layer:

* **use**: it creates `<layer dir>/use` (and removes it again if that worked). It does this when
  it looks a layer up for a pull, when it creates its own layer from the store's (the layer then
  stays in use until it is deleted), and when it reads a stored layer for `push`/`save`.
* **release**: it `rmdir`s the layer directory: at the end of a pull for every lookup it made, on
  `podman rmi` for every layer it deletes, and after a `push`/`save` read.

A store that counts answers ENOENT to both (anything else makes containers/storage log a warning
that the store does not seem to support garbage collection). A plain stat of the layer's files
counts nothing: only these two notifications do.

`UseCounts` is that state machine, keyed by whatever names a layer for the store (a
`layout.LayerKey`). Counts never go below zero: a release without a use (say, for a layer used
before the store restarted) is counted in `unmatched_releases` instead. Thread-safe.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

# What the store answers to a use or a release: the layer directory has no `use` entry, and
# the directory itself is never removed.
ANSWER_ERRNO = errno.ENOENT

K = TypeVar("K", bound=Hashable)


class UseCounts(Generic[K]):
    """Per-layer use counts. `on_idle(key)` (optional) runs, outside the lock, whenever a
    layer's count returns to zero: the store may then let the layer's cached data go."""

    def __init__(self, on_idle: Callable[[K], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._counts: dict[K, int] = {}
        self._on_idle = on_idle
        self.uses = 0
        self.releases = 0
        self.unmatched_releases = 0

    def use(self, key: K) -> int:
        """A use notification: one more user. Returns the errno to answer (ENOENT)."""
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1
            self.uses += 1
        return ANSWER_ERRNO

    def release(self, key: K) -> int:
        """A release notification: one user less. Returns the errno to answer (ENOENT)."""
        idle = False
        with self._lock:
            self.releases += 1
            count = self._counts.get(key, 0)
            if count == 0:
                self.unmatched_releases += 1
            elif count == 1:
                del self._counts[key]
                idle = True
            else:
                self._counts[key] = count - 1
        if idle and self._on_idle is not None:
            self._on_idle(key)
        return ANSWER_ERRNO

    def count(self, key: K) -> int:
        with self._lock:
            return self._counts.get(key, 0)

    def in_use(self) -> dict[K, int]:
        """Every layer with at least one user, and its count."""
        with self._lock:
            return dict(self._counts)


__all__ = ["ANSWER_ERRNO", "UseCounts"]
