"""A fault-injecting HTTP/1.1 proxy on 127.0.0.1 for registry tests.

It sits between a client and a real registry and relays each request as raw bytes over its own
upstream connection (one request per connection: both sides are told `Connection: close`; a
chunked request body is not relayed, only broken). A `Fault` picks requests by method, path,
position and whether the body is chunked, and breaks them the way a network does:

* `drop-request`: read part of the request body, then close the client's connection; nothing
  reaches the registry.
* `drop-forwarded`: send the request head and part of its body to the registry, then close both
  connections; the registry sees a request body that ends early.
* `cut-response`: forward the request whole, relay the response head and `keep` body bytes,
  then close the client's connection (the body is shorter than its `Content-Length`).

Every request is logged (method, path, the headers that matter, and the fault applied).
Start it with `FaultProxy(upstream_port)`; `stop()` closes the listener and every connection
and joins every thread it started.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field

_ACTIONS = ("drop-request", "drop-forwarded", "cut-response")


@dataclass
class Fault:
    """Break matching requests number `nth` (from 1) to `nth + times - 1` (`times=0`: all from
    `nth` on). `path` is a substring of the request target."""

    method: str
    action: str
    path: str = ""
    nth: int = 1
    times: int = 1
    keep: int = 0  # cut-response: body bytes relayed before the cut
    chunked: bool | None = None  # only requests with (True) or without (False) a chunked body
    seen: int = 0
    applied: int = 0

    def __post_init__(self) -> None:
        if self.action not in _ACTIONS:
            raise ValueError(f"unknown fault action {self.action!r}")

    def take(self, method: str, target: str, chunked: bool = False) -> bool:
        if method != self.method or self.path not in target:
            return False
        if self.chunked is not None and chunked != self.chunked:
            return False
        self.seen += 1
        if self.seen < self.nth or (self.times and self.seen >= self.nth + self.times):
            return False
        self.applied += 1
        return True


@dataclass
class Logged:
    method: str
    target: str
    headers: dict[str, str]
    fault: str | None


@dataclass
class _Request:
    method: str
    target: str
    head_lines: list[str]
    headers: dict[str, str] = field(default_factory=dict)


def _read_head(sock: socket.socket, buffer: bytearray) -> bytes | None:
    while b"\r\n\r\n" not in buffer:
        data = sock.recv(65536)
        if not data:
            return None
        buffer += data
    end = buffer.index(b"\r\n\r\n") + 4
    head = bytes(buffer[:end])
    del buffer[:end]
    return head


def _read_body(sock: socket.socket, buffer: bytearray, length: int) -> bytes:
    while len(buffer) < length:
        data = sock.recv(min(65536, length - len(buffer)))
        if not data:
            break
        buffer += data
    body = bytes(buffer[:length])
    del buffer[:length]
    return body


def _parse(head: bytes) -> _Request:
    lines = head.decode("latin-1").split("\r\n")[:-2]
    method, target, _ = lines[0].split(" ", 2)
    request = _Request(method=method, target=target, head_lines=lines)
    for line in lines[1:]:
        name, _, value = line.partition(":")
        request.headers[name.strip().lower()] = value.strip()
    return request


def _with_connection_close(lines: list[str]) -> bytes:
    kept = [line for line in lines if not line.lower().startswith(("connection:", "keep-alive:"))]
    return ("\r\n".join([*kept, "Connection: close"]) + "\r\n\r\n").encode("latin-1")


class FaultProxy:
    """See the module docstring. `faults` are consulted in order; the first that takes a request
    breaks it. `log` lists every request seen."""

    def __init__(self, upstream_port: int, faults: list[Fault] | None = None) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.faults = list(faults or [])
        self.log: list[Logged] = []
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._stopping = False
        self._accept_thread = threading.Thread(target=self._accept, daemon=True)
        self._accept_thread.start()

    def requests(self, method: str, path: str = "") -> list[Logged]:
        with self._lock:
            return [r for r in self.log if r.method == method and path in r.target]

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if self._stopping:
                    conn.close()
                    return
                self._sockets.add(conn)
                thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
                self._threads.append(thread)
            thread.start()

    def _fault_for(self, request: _Request) -> Fault | None:
        with self._lock:
            chunked = "chunked" in request.headers.get("transfer-encoding", "").lower()
            fault = next((f for f in self.faults if f.take(request.method, request.target, chunked)), None)
            kept = {k: v for k, v in request.headers.items() if k in ("range", "content-range", "content-length")}
            self.log.append(Logged(request.method, request.target, kept, fault.action if fault else None))
        return fault

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            buffer = bytearray()
            head = _read_head(client, buffer)
            if head is None:
                return
            request = _parse(head)
            length = int(request.headers.get("content-length", "0") or 0)
            fault = self._fault_for(request)
            if fault is not None and fault.action == "drop-request":
                _read_body(client, buffer, length // 2)
                return
            body = _read_body(client, buffer, length)
            upstream = socket.create_connection(self.upstream, timeout=30)
            with self._lock:
                self._sockets.add(upstream)
            out_head = _with_connection_close(request.head_lines)
            if fault is not None and fault.action == "drop-forwarded":
                upstream.sendall(out_head + body[: length // 2])
                return
            upstream.sendall(out_head + body)
            reply = bytearray()
            reply_head = _read_head(upstream, reply)
            if reply_head is None:
                return
            lines = reply_head.decode("latin-1").split("\r\n")[:-2]
            client.sendall(_with_connection_close(lines))
            if fault is not None and fault.action == "cut-response":
                while len(reply) < fault.keep:
                    data = upstream.recv(65536)
                    if not data:
                        break
                    reply += data
                client.sendall(bytes(reply[: fault.keep]))
                return
            if request.method == "HEAD":
                return
            client.sendall(bytes(reply))
            while data := upstream.recv(65536):
                client.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    sock.close()
                    with self._lock:
                        self._sockets.discard(sock)

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            sockets = list(self._sockets)
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._accept_thread.join(timeout=10)
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=10)
