"""A connection to containerd's gRPC socket.

Every call carries the namespace (`containerd-namespace` metadata) and, while one is held, the
lease (`containerd-lease`), and every gRPC failure becomes a one-line ContainerdError whose
`code` is the gRPC status name. The service clients (content, images, leases, snapshots, diff)
are small modules on top of this one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import grpc

from socikit.errors import ContainerdError

DEFAULT_ADDRESS = "/run/containerd/containerd.sock"
DEFAULT_NAMESPACE = "default"
NAMESPACE_HEADER = "containerd-namespace"
LEASE_HEADER = "containerd-lease"
# containerd's own gRPC server accepts messages up to 16 MiB; so do we.
MAX_MESSAGE = 16 << 20
# Unary calls that do not move data: a wedged daemon fails the call instead of hanging it.
DEFAULT_TIMEOUT = 120.0

_Response = TypeVar("_Response")


def grpc_target(address: str) -> str:
    """The grpcio target for a unix socket path (`unix:` prefixes are accepted as given)."""
    if address.startswith("unix:"):
        return address
    return "unix:" + os.path.abspath(address)


def error_from_rpc(exc: grpc.RpcError, what: str, peer: str) -> ContainerdError:
    """One line naming the call, the peer and the gRPC status; never the request's content."""
    code = exc.code() if isinstance(exc, grpc.Call) else None
    name = code.name if code is not None else ""
    details = (exc.details() if isinstance(exc, grpc.Call) else "") or ""
    details = " ".join(details.split())[:300]
    if name == "UNAVAILABLE":
        # grpc's text for a dead socket repeats the address; its last "error: ..." is the cause.
        cause = details.rsplit("error: ", 1)[-1] if "error: " in details else details
        return ContainerdError(f"cannot reach {peer}: {cause or 'unavailable'}", code=name)
    if name == "DEADLINE_EXCEEDED":
        return ContainerdError(f"{what} on {peer}: no answer in time", code=name)
    return ContainerdError(f"{what} on {peer} failed: {details or name} ({name})", code=name)


class Containerd:
    """One gRPC channel to containerd at `address` for namespace `namespace`.

    `lease` (set by `socikit.containerd.leases.lease`) is sent with every call while set, so
    what the calls create stays protected from garbage collection until the lease is deleted."""

    def __init__(self, address: str = DEFAULT_ADDRESS, *, namespace: str = DEFAULT_NAMESPACE,
                 timeout: float = DEFAULT_TIMEOUT, peer_name: str = "containerd") -> None:
        if not namespace:
            raise ContainerdError("the containerd namespace must not be empty")
        self.address = address
        self.namespace = namespace
        self.timeout = timeout
        self.peer = f"{peer_name} at {address}"
        self.lease: str | None = None
        self._channel = grpc.insecure_channel(grpc_target(address), options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            ("grpc.max_send_message_length", MAX_MESSAGE),
        ])
        self._stubs: dict[Callable[[grpc.Channel], Any], Any] = {}

    def __repr__(self) -> str:
        return f"Containerd(address={self.address!r}, namespace={self.namespace!r})"

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Containerd:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def metadata(self) -> tuple[tuple[str, str], ...]:
        pairs = [(NAMESPACE_HEADER, self.namespace)]
        if self.lease:
            pairs.append((LEASE_HEADER, self.lease))
        return tuple(pairs)

    def stub(self, factory: Callable[[grpc.Channel], Any]) -> Any:
        """The generated stub `factory(channel)` for this channel (made once)."""
        if factory not in self._stubs:
            self._stubs[factory] = factory(self._channel)
        return self._stubs[factory]

    def call(self, what: str, method: Callable[..., _Response], request: Any, *,
             timeout: float | None = -1.0) -> _Response:
        """A unary call with this connection's metadata; `timeout=None` waits as long as it takes
        (layer extraction), the default is the connection's timeout."""
        deadline = self.timeout if timeout is not None and timeout < 0 else timeout
        try:
            return method(request, metadata=self.metadata(), timeout=deadline)
        except grpc.RpcError as exc:
            raise error_from_rpc(exc, what, self.peer) from None

    def stream(self, what: str, method: Callable[..., Iterator[_Response]], request: Any) -> Iterator[_Response]:
        """A server-streaming call's responses, failures mapped like `call`."""
        try:
            yield from method(request, metadata=self.metadata())
        except grpc.RpcError as exc:
            raise error_from_rpc(exc, what, self.peer) from None


__all__ = ["DEFAULT_ADDRESS", "DEFAULT_NAMESPACE", "LEASE_HEADER", "NAMESPACE_HEADER", "Containerd",
           "error_from_rpc", "grpc_target"]
