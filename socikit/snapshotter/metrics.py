"""Prometheus metrics: a small registry, the text exposition format, and an HTTP endpoint thread.

`MetricsRegistry` holds counters and gauges (optionally with labels, optionally collected at
scrape time); `SnapshotterMetrics` is the daemon's set, which the lazy-layer code extends by
incrementing the span, byte, verification, FUSE and background-fetch series declared there.
"""

from __future__ import annotations

import ipaddress
import math
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from socikit.errors import ConfigError

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "socikit_snapshotter_"

LabelValues = tuple[str, ...]


class _Metric:
    kind = "untyped"

    def __init__(self, name: str, help_text: str, label_names: Sequence[str] = (),
                 collect: Callable[[], Mapping[LabelValues, float]] | None = None) -> None:
        self.name = name
        self.help = help_text
        self.label_names = tuple(label_names)
        self._values: dict[LabelValues, float] = {}
        self._lock = threading.Lock()
        self._collect = collect

    def _key(self, labels: Mapping[str, str]) -> LabelValues:
        if set(labels) != set(self.label_names):
            raise ValueError(f"{self.name} takes labels {self.label_names}, got {sorted(labels)}")
        return tuple(str(labels[n]) for n in self.label_names)

    def _add(self, amount: float, labels: Mapping[str, str]) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        key = self._key(labels)
        return self.samples().get(key, 0.0)

    def samples(self) -> dict[LabelValues, float]:
        if self._collect is not None:
            return dict(self._collect())
        with self._lock:
            values = dict(self._values)
        if not self.label_names and not values:
            values[()] = 0.0  # an unlabelled series exists from the start
        return values

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {_escape_help(self.help)}", f"# TYPE {self.name} {self.kind}"]
        for key, value in sorted(self.samples().items()):
            labels = ",".join(f'{n}="{_escape_label(v)}"' for n, v in zip(self.label_names, key, strict=True))
            lines.append(f"{self.name}{{{labels}}} {_number(value)}" if labels else f"{self.name} {_number(value)}")
        return lines


class Counter(_Metric):
    kind = "counter"

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        self._add(amount, labels)


class Gauge(_Metric):
    kind = "gauge"

    def set(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = float(value)

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        self._add(amount, labels)

    def dec(self, amount: float = 1.0, **labels: str) -> None:
        self._add(-amount, labels)


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if value == int(value) and abs(value) < 2**53 else repr(value)


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class MetricsRegistry:
    def __init__(self) -> None:
        self._metrics: dict[str, _Metric] = {}
        self._lock = threading.Lock()

    def _register(self, metric: _Metric) -> Any:
        with self._lock:
            if metric.name in self._metrics:
                raise ValueError(f"metric {metric.name} is already registered")
            self._metrics[metric.name] = metric
        return metric

    def counter(self, name: str, help_text: str, label_names: Sequence[str] = ()) -> Counter:
        result: Counter = self._register(Counter(name, help_text, label_names))
        return result

    def gauge(self, name: str, help_text: str, label_names: Sequence[str] = (),
              collect: Callable[[], Mapping[LabelValues, float]] | None = None) -> Gauge:
        result: Gauge = self._register(Gauge(name, help_text, label_names, collect))
        return result

    def render(self) -> str:
        with self._lock:
            metrics = list(self._metrics.values())
        lines: list[str] = []
        for metric in metrics:
            lines.extend(metric.render())
        return "\n".join(lines) + "\n"


class SnapshotterMetrics:
    """The daemon's series. The span/byte/verification/FUSE/background-fetch ones are declared
    here for the lazy-layer filesystem to increment (they stay empty without lazy layers)."""

    def __init__(self, registry: MetricsRegistry) -> None:
        self.registry = registry
        self.grpc_requests = registry.counter(PREFIX + "grpc_requests_total",
                                              "Snapshots gRPC requests served, by method.", ("method",))
        self.grpc_errors = registry.counter(PREFIX + "grpc_errors_total",
                                            "Snapshots gRPC requests answered with an error, by method and "
                                            "status code.", ("method", "code"))
        self.lazy_mounts = registry.counter(PREFIX + "lazy_mounts_total",
                                            "Layers offered to the layer filesystem on unpack, by result "
                                            "(served, declined, failed).", ("result",))
        self.spans_fetched = registry.counter(PREFIX + "spans_fetched_total",
                                              "Spans fetched from registries, by layer digest.", ("layer",))
        self.fetched_bytes = registry.counter(PREFIX + "fetched_bytes_total",
                                              "Compressed bytes fetched from registries, by layer digest.",
                                              ("layer",))
        self.span_verification_failures = registry.counter(
            PREFIX + "span_verification_failures_total",
            "Fetched spans whose sha256 did not match the ztoc, by layer digest.", ("layer",))
        self.fuse_operation_errors = registry.counter(PREFIX + "fuse_operation_errors_total",
                                                      "FUSE operations that failed, by operation.", ("operation",))
        self.background_fetch_spans = registry.counter(PREFIX + "background_fetch_spans_total",
                                                       "Spans the background fetcher filled, by layer digest.",
                                                       ("layer",))
        self.background_fetch_remaining_spans = registry.gauge(
            PREFIX + "background_fetch_remaining_spans",
            "Spans of mounted layers not yet cached, by layer digest.", ("layer",))

    def snapshots_by_kind(self, collect: Callable[[], Mapping[str, int]]) -> None:
        """Register the snapshot count gauge, read from the store at each scrape."""
        self.registry.gauge(PREFIX + "snapshots", "Snapshots in the store, by kind.", ("kind",),
                            collect=lambda: {(kind,): float(n) for kind, n in collect().items()})


def parse_address(address: str, *, allow_non_loopback: bool) -> tuple[str, int]:
    """`HOST:PORT` or `[IPV6]:PORT` → (host, port); the host must be loopback unless allowed."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit() or not host:
        raise ConfigError(f"metrics address {address!r}: expected HOST:PORT")
    host = host.removeprefix("[").removesuffix("]")
    port = int(port_text)
    if port > 65535:
        raise ConfigError(f"metrics address {address!r}: port out of range")
    if not allow_non_loopback:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise ConfigError(f"metrics address {address!r}: {exc.strerror or exc}") from None
        if not infos or not all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos):
            raise ConfigError(f"metrics address {address!r} is not a loopback address "
                              "(set metrics_allow_non_loopback = true to serve metrics beyond this host)")
    return host, port


class MetricsServer:
    """`GET /metrics` over HTTP on a daemon thread."""

    def __init__(self, registry: MetricsRegistry, host: str, port: int) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                if self.path.split("?", 1)[0] != "/metrics":
                    self.send_error(404)
                    return
                body = registry.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        family = socket.AF_INET6 if ":" in host else socket.AF_INET

        class Server(ThreadingHTTPServer):
            address_family = family
            daemon_threads = True

        try:
            self._server = Server((host, port), Handler)
        except OSError as exc:
            raise ConfigError(f"metrics address {host}:{port}: {exc.strerror or exc}") from None
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
