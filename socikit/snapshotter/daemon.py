"""The snapshotter daemon's composition root and main loop.

    run_daemon(options)
      ├─ lock the root, open the store, pick the layer filesystem, check and claim the socket
      └─ trio.run(_serve)                                    (main thread: signals arrive here)
           signal receiver (SIGTERM, SIGINT), then one nursery:
             1. layer filesystem: nursery.start(layers.serve)  ← the FUSE loop (pyfuse3) and the
                background fetcher run here
             2. re-mount remote snapshots (worker thread)
             3. gRPC server (grpcio, on its own thread pool) on the unix socket, 0600: containerd's
                Snapshots service and socikit's Credentials side channel
             4. metrics HTTP server thread (if configured)
             5. wait for a signal → stop gRPC (grace), stop metrics, cancel the nursery
                (the layer filesystem releases its mounts when cancelled)
      finally: remove the socket, close the store, release the root lock

Everything is stopped in reverse order whether the loop ends by a signal or by an error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import socket
import stat
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from socikit.__about__ import __version__
from socikit.daemonroot import locked_root
from socikit.errors import ConfigError
from socikit.snapshotter.config import (
    DEFAULT_ADDRESS,
    DEFAULT_CONFIG,
    DEFAULT_ROOT,
    SnapshotterConfig,
    load_config,
)
from socikit.snapshotter.fs import TEST_LAYER_FS_ENV, LayerFileSystem, NoLazyLayers, load_test_layer_filesystem
from socikit.snapshotter.jsonlog import LEVELS, configure, log

GRPC_WORKERS = 32  # containerd unpacks layers in parallel; a lazy mount may take seconds
GRPC_SHUTDOWN_GRACE_S = 5.0
MAX_SOCKET_PATH = 107  # sockaddr_un.sun_path holds 108 bytes with the terminating NUL


@dataclass(frozen=True)
class DaemonOptions:
    address: Path
    root: Path
    config: SnapshotterConfig
    log_level: str
    metrics_address: str  # "" for no metrics endpoint
    ignored_keys: tuple[str, ...] = ()


def resolve_options(*, address: Path | None = None, root: Path | None = None, config_path: Path | None = None,
                    log_level: str | None = None, metrics_address: str | None = None) -> DaemonOptions:
    """Command-line values over config file values over defaults. The default config file may
    be missing; one named explicitly must exist."""
    loaded = load_config(config_path or DEFAULT_CONFIG, missing_ok=config_path is None)
    config = loaded.config
    if metrics_address is not None:
        config = dataclasses.replace(config, metrics_address=metrics_address)
    level = log_level or ("debug" if config.debug else "info")
    if level not in LEVELS:
        raise ConfigError(f"--log-level {level!r}: expected one of {', '.join(LEVELS)}")
    effective_metrics = "" if config.no_prometheus else config.metrics_address
    if effective_metrics:
        from socikit.snapshotter.metrics import parse_address

        parse_address(effective_metrics, allow_non_loopback=config.metrics_allow_non_loopback)
    check_socket_path(address or DEFAULT_ADDRESS)
    return DaemonOptions(address=address or DEFAULT_ADDRESS, root=root or DEFAULT_ROOT, config=config,
                         log_level=level, metrics_address=effective_metrics, ignored_keys=loaded.ignored_keys)


# -- the root and the socket ----------------------------------------------------------------------


def _socket_in_use(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2)
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        except OSError as exc:
            raise ConfigError(f"socket {path}: {exc.strerror or exc}") from None
        return True


def check_socket_path(path: Path) -> None:
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise ConfigError(f"socket path {path} is longer than {MAX_SOCKET_PATH} bytes (the unix socket limit)")


def claim_socket_path(path: Path) -> None:
    """Make the socket's directory (0700 when we create it) and remove a stale socket file;
    refuse when another process serves the socket or the path is not a socket."""
    check_socket_path(path)
    try:
        if not path.parent.exists():
            path.parent.mkdir(mode=0o700, parents=True)
            os.chmod(path.parent, 0o700)  # mkdir's mode is filtered by the umask
        st = path.lstat()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ConfigError(f"socket {path}: {exc.strerror or exc}") from None
    if not stat.S_ISSOCK(st.st_mode):
        raise ConfigError(f"{path} exists and is not a socket")
    if _socket_in_use(path):
        raise ConfigError(f"another process is serving {path}")
    path.unlink()


# -- the layer filesystem -------------------------------------------------------------------------


def layer_filesystem(config: SnapshotterConfig, root: Path, logger: logging.Logger, *, metrics: Any = None,
                     credentials: Any = None) -> LayerFileSystem:
    """The filesystem that serves lazy layers: FUSE layers over socikit.lazy, unless `[lazy]
    enable = false` or FUSE cannot be used here (then none: containerd applies every layer).
    The test suite may name a double through TEST_LAYER_FS_ENV."""
    spec = os.environ.get(TEST_LAYER_FS_ENV)
    if spec:
        log(logger, logging.WARNING, "TEST-ONLY layer filesystem in use", spec=spec)
        return load_test_layer_filesystem(spec, config=config, root=root)
    if not config.lazy.enable:
        log(logger, logging.INFO, "lazy loading disabled ([lazy] enable = false): containerd applies every layer")
        return NoLazyLayers()
    from socikit.lazy.fuseprobe import fuse_unavailable
    from socikit.snapshotter.lazylayers import LazyLayers

    reason = fuse_unavailable()
    if reason is not None:
        log(logger, logging.WARNING, "FUSE unavailable: layers are not served lazily", reason=reason)
        return NoLazyLayers()
    return LazyLayers(config, root, metrics=metrics, credentials=credentials)


# -- running ----------------------------------------------------------------------------------------


def run_daemon(options: DaemonOptions) -> None:
    """Serve until SIGTERM or SIGINT. Start-up problems raise ConfigError/SnapshotError."""
    import trio

    from socikit.snapshotter.credentials import CredentialStore
    from socikit.snapshotter.metrics import MetricsRegistry, SnapshotterMetrics
    from socikit.snapshotter.snapshots import Snapshotter
    from socikit.snapshotter.store import SnapshotStore

    logger = configure(options.log_level)
    if options.ignored_keys:
        log(logger, logging.WARNING, "config keys of soci-snapshotter-grpc that have no effect in socikit",
            keys=list(options.ignored_keys))
    with locked_root(options.root, holder="snapshotter"):
        claim_socket_path(options.address)
        store = SnapshotStore(options.root)
        try:
            metrics = SnapshotterMetrics(MetricsRegistry())
            credentials = CredentialStore()
            layers = layer_filesystem(options.config, options.root, logger, metrics=metrics, credentials=credentials)
            snapshotter = Snapshotter(store, layers, config=options.config, metrics=metrics)
            metrics.snapshots_by_kind(snapshotter.count_by_kind)
            daemon = _Daemon(options, snapshotter, layers, metrics, logger, credentials)
            trio.run(daemon.serve)
        finally:
            store.close()
            _remove_socket(options.address, logger)
    log(logger, logging.INFO, "stopped")


def _remove_socket(path: Path, logger: logging.Logger) -> None:
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(path.lstat().st_mode):
            path.unlink()
            log(logger, logging.DEBUG, "socket removed", address=str(path))


class _Daemon:
    def __init__(self, options: DaemonOptions, snapshotter: Any, layers: LayerFileSystem, metrics: Any,
                 logger: logging.Logger, credentials: Any) -> None:
        self.options = options
        self.credentials = credentials
        self.snapshotter = snapshotter
        self.layers = layers
        self.metrics = metrics
        self.logger = logger

    async def serve(self) -> None:
        import trio

        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:
                # 1. The layer filesystem's loop: the FUSE file system (pyfuse3) and the background fetcher.
                await nursery.start(self._serve_layers)
                # 2. Remote snapshots are mounted again before containerd can ask for them.
                restored = await trio.to_thread.run_sync(self.snapshotter.restore_remote_snapshots)
                if restored:
                    log(self.logger, logging.INFO, "remote snapshots mounted again", count=restored)
                server = metrics_server = None
                try:
                    # 3. + 4. containerd's gRPC API and the metrics endpoint, each on its own threads.
                    server = await trio.to_thread.run_sync(self._start_grpc)
                    metrics_server = self._start_metrics()
                    log(self.logger, logging.INFO, "serving", address=str(self.options.address),
                        root=str(self.options.root), version=__version__,
                        metrics=self.options.metrics_address or None)
                    # 5. Until a signal.
                    async for signum in signals:
                        log(self.logger, logging.INFO, "stopping", signal=signal.Signals(signum).name)
                        break
                finally:
                    with trio.CancelScope(shield=True):
                        if server is not None:
                            await trio.to_thread.run_sync(self._stop_grpc, server)
                        if metrics_server is not None:
                            metrics_server.stop()
                # The layer filesystem's loop is cancelled last: it releases its mounts.
                nursery.cancel_scope.cancel()

    async def _serve_layers(self, task_status: Any) -> None:
        await self.layers.serve(task_status=task_status)

    def _start_grpc(self) -> Any:
        import grpc

        from socikit.snapshotter import credentials
        from socikit.snapshotter.service import SnapshotsService, add_to_server

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=GRPC_WORKERS, thread_name_prefix="grpc"))
        add_to_server(SnapshotsService(self.snapshotter, self.metrics), server)
        # socikit's side channel: `image rpull --user` hands over credentials for one image
        credentials.add_to_server(credentials.CredentialsService(self.credentials), server)
        address = self.options.address
        # Only the owner may connect: the socket is made 0600 from the start (umask), not chmod'ed
        # after a window in which anyone could have connected.
        previous = os.umask(0o177)
        try:
            bound = server.add_insecure_port(f"unix://{address}")
            server.start()
        except RuntimeError as exc:
            raise ConfigError(f"cannot serve on {address}: {exc}") from None
        finally:
            os.umask(previous)
        if not bound:
            raise ConfigError(f"cannot serve on {address}")
        os.chmod(address, 0o600)
        return server

    def _stop_grpc(self, server: Any) -> None:
        server.stop(GRPC_SHUTDOWN_GRACE_S).wait()

    def _start_metrics(self) -> Any:
        if not self.options.metrics_address:
            return None
        from socikit.snapshotter.metrics import MetricsServer, parse_address

        host, port = parse_address(self.options.metrics_address,
                                   allow_non_loopback=self.options.config.metrics_allow_non_loopback)
        server = MetricsServer(self.metrics.registry, host, port)
        server.start()
        return server
