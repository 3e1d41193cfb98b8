"""The seam between the snapshotter and whatever serves layers lazily.

The snapshotter (socikit.snapshotter.snapshots) knows only the `LayerFileSystem` Protocol below.
The lazy-layer implementation (SOCI index discovery, one FUSE mount whose top-level directories
are layers, span fetching) plugs in here; until then `NoLazyLayers` declines every layer and
containerd applies layers itself, as with any snapshotter.

The handshake follows containerd's remote-snapshot ("already exists") protocol: when containerd
prepares the snapshot of a layer it is unpacking (label `containerd.io/snapshot.ref` = the layer's
chain ID), the snapshotter calls `mount(chain_id, labels)`. A directory answer means the layer's
contents are served there, read-only: the snapshotter commits the snapshot under the chain ID with
that directory as its layer, and containerd skips downloading and applying it. `None` means "not
lazily": containerd gets ordinary mounts and applies the layer.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from socikit.errors import ConfigError

# trio's TaskStatus (trio 0.22 ships no type information).
TaskStatus = Any


@runtime_checkable
class LayerFileSystem(Protocol):
    """Serves image layers as read-only directories.

    Threads: `mount`, `check` and `unmount` are called on the gRPC server's worker threads (and
    `mount` once per remote snapshot at start-up, before gRPC serves); `serve` runs in the
    daemon's trio nursery. An implementation that needs trio from the synchronous methods keeps
    the token from `serve` (`trio.lowlevel.current_trio_token()`) and uses `trio.from_thread.run`.
    """

    def mount(self, name: str, labels: Mapping[str, str]) -> Path | None:
        """Serve the layer that will be the committed snapshot `name` (its chain ID).

        `labels` are the Prepare request's (containerd's `containerd.io/snapshot.ref`, the
        `containerd.io/snapshot/cri.*` and `.../remote/soci.*` ones when the client sends them),
        or, at start-up, the stored remote snapshot's labels. Returns the directory holding the
        layer's contents exactly as an overlay lower directory must look (whiteouts as 0/0
        character devices, opaque directories marked with `trusted.overlay.opaque=y`), or None
        to decline: the layer is then applied by containerd. May raise; the snapshotter logs the
        error and treats it as None. Mounting a name that is already mounted returns its path."""
        ...

    def check(self, name: str, labels: Mapping[str, str]) -> bool:
        """Whether the mounted layer `name` can still serve reads (e.g. its registry is
        reachable or it is fully cached). False makes mounts that need it fail."""
        ...

    def unmount(self, name: str) -> None:
        """Release the layer `name`: its snapshot was removed. Unknown names are ignored."""
        ...

    async def serve(self, *, task_status: TaskStatus) -> None:
        """Run for the daemon's lifetime in its trio nursery (the FUSE main loop goes here).
        Call `task_status.started()` once `mount` may be called; on cancellation (daemon
        shutdown) release every mount before returning."""
        ...


class NoLazyLayers:
    """The layer filesystem used when nothing else is configured: declines every layer."""

    def mount(self, name: str, labels: Mapping[str, str]) -> Path | None:
        return None

    def check(self, name: str, labels: Mapping[str, str]) -> bool:
        return False

    def unmount(self, name: str) -> None:
        return None

    async def serve(self, *, task_status: TaskStatus) -> None:
        import trio

        task_status.started()
        await trio.sleep_forever()


# Only for the test suite: a `module:factory` path naming a test double. Honoured only for modules
# of the repository's `tests` package, which is not installed with socikit, so production cannot
# select it by accident; the daemon logs a warning whenever it is used.
TEST_LAYER_FS_ENV = "SOCIKIT_SNAPSHOTTER_TEST_LAYER_FS"


def load_test_layer_filesystem(spec: str, **factory_kwargs: Any) -> LayerFileSystem:
    module_name, _, attr = spec.partition(":")
    if not module_name.startswith("tests.") or not attr:
        raise ConfigError(f"{TEST_LAYER_FS_ENV}={spec!r}: only a tests.<module>:<factory> test double may be named")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{TEST_LAYER_FS_ENV}={spec!r}: {exc}") from None
    filesystem = factory(**factory_kwargs)
    if not isinstance(filesystem, LayerFileSystem):
        raise ConfigError(f"{TEST_LAYER_FS_ENV}={spec!r} did not make a LayerFileSystem")
    return filesystem
