"""The daemon's Credentials side channel: what `rpull --user` hands over is kept for that image
and registry only, refused when malformed, and never logged."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from socikit.containerd._proto import socikit_credentials_pb2, socikit_credentials_pb2_grpc
from socikit.containerd.credentials import hand_over
from socikit.registry.auth import Credentials
from socikit.snapshotter.credentials import CredentialsService, CredentialStore, add_to_server
from socikit.snapshotter.jsonlog import configure

SECRET = "never-in-a-log-line"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[CredentialStore, Path, io.StringIO]]:
    stream = io.StringIO()
    configure("debug", stream=stream)
    store = CredentialStore()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    add_to_server(CredentialsService(store), server)
    socket = tmp_path / "creds.sock"
    server.add_insecure_port(f"unix://{socket}")
    server.start()
    try:
        yield store, socket, stream
    finally:
        server.stop(None).wait(10)
        logging.getLogger("socikit.snapshotter").handlers.clear()


def test_handed_over_for_one_image_and_its_registry(served: tuple[CredentialStore, Path, io.StringIO]) -> None:
    store, socket, log = served
    outcome = hand_over(str(socket), image_ref="registry.example:5000/team/app:1", host="registry.example:5000",
                        username="alice", secret=SECRET)
    assert outcome.delivered, outcome.note
    assert store.lookup("registry.example:5000/team/app:1", "registry.example:5000") == Credentials("alice", SECRET)
    assert store.lookup("registry.example:5000/team/other:1", "registry.example:5000") is None
    assert store.lookup("registry.example:5000/team/app:1", "mirror.example") is None
    assert store.lookup("not a reference", "registry.example:5000") is None
    hand_over(str(socket), image_ref="registry.example:5000/team/app:1", host="registry.example:5000",
              username="bob", secret="newer")
    assert store.lookup("registry.example:5000/team/app:1", "registry.example:5000") == Credentials("bob", "newer")
    assert len(store) == 1
    assert "credentials received" in log.getvalue() and SECRET not in log.getvalue()


def test_docker_hub_spellings_are_one_image(served: tuple[CredentialStore, Path, io.StringIO]) -> None:
    store, socket, _ = served
    assert hand_over(str(socket), image_ref="alpine", host="docker.io", username="u", secret="s").delivered
    assert store.lookup("docker.io/library/alpine:latest", "docker.io") == Credentials("u", "s")


@pytest.mark.parametrize(("image_ref", "host", "username", "secret"), [
    ("", "registry.example", "u", "s"),
    ("Not A Reference!", "registry.example", "u", "s"),
    ("registry.example/app:1", "", "u", "s"),
    ("registry.example/app:1", "elsewhere.example", "u", "s"),
    ("registry.example/app:1", "registry.example", "", ""),
])
def test_malformed_requests_are_refused(served: tuple[CredentialStore, Path, io.StringIO], image_ref: str, host: str,
                                        username: str, secret: str) -> None:
    store, socket, _ = served
    with grpc.insecure_channel(f"unix://{socket}") as channel:
        stub = socikit_credentials_pb2_grpc.CredentialsStub(channel)  # type: ignore[no-untyped-call]
        with pytest.raises(grpc.RpcError) as refused:
            stub.Put(socikit_credentials_pb2.PutCredentialsRequest(image_ref=image_ref, host=host, username=username,
                                                                   secret=secret), timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert len(store) == 0
