"""Registry credentials handed to the daemon for one image (`socikit image rpull --user`).

socikit's side channel on the daemon's socket, `socikit.snapshotter.v1.Credentials/Put`: rpull
resolved the image with the user's credentials and the daemon fetches that image's spans later.
They are kept in this process's memory only (never on disk), for the image reference and
registry host they were given for, replaced by a later Put for the same image, and never
logged: the log says only that credentials arrived for an image. The socket is the daemon's own
(mode 0600, root), so only its owner can hand credentials over.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import grpc
from google.protobuf import empty_pb2

from socikit.containerd._proto import socikit_credentials_pb2_grpc
from socikit.content.reference import parse_docker_reference
from socikit.errors import ImageReferenceError
from socikit.registry.auth import Credentials
from socikit.snapshotter.jsonlog import LOGGER_NAME, log

__all__ = ["CredentialStore", "CredentialsService", "add_to_server"]

_log = logging.getLogger(LOGGER_NAME)


def _image_key(image_ref: str) -> str:
    """The image reference in one spelling (`docker.io/library/x:latest` for `x`)."""
    return parse_docker_reference(image_ref).docker_reference


class CredentialStore:
    """(image reference, registry host) -> credentials, in memory. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_image: dict[str, tuple[str, Credentials]] = {}

    def put(self, image_ref: str, host: str, credentials: Credentials) -> None:
        key = _image_key(image_ref)
        with self._lock:
            self._by_image[key] = (host, credentials)

    def lookup(self, image_ref: str, host: str) -> Credentials | None:
        """What was handed over for `image_ref`, if it was for `host`."""
        try:
            key = _image_key(image_ref)
        except ImageReferenceError:
            return None
        with self._lock:
            found = self._by_image.get(key)
        if found is None or found[0] != host:
            return None
        return found[1]

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_image)


class CredentialsService(socikit_credentials_pb2_grpc.CredentialsServicer):
    def __init__(self, store: CredentialStore) -> None:
        self.store = store

    def Put(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 (gRPC's name)
        image_ref, host = str(request.image_ref), str(request.host)
        try:
            parsed = parse_docker_reference(image_ref)
        except ImageReferenceError:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "image_ref is not an image reference")
        if not host or parsed.host != host:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "host must be the registry host of image_ref")
        if not request.username and not request.secret:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "no credentials given")
        self.store.put(image_ref, host, Credentials(username=str(request.username), password=str(request.secret)))
        log(_log, logging.INFO, "registry credentials received for an image", image=image_ref, host=host)
        return empty_pb2.Empty()


def add_to_server(service: CredentialsService, server: Any) -> None:
    socikit_credentials_pb2_grpc.add_CredentialsServicer_to_server(service, server)  # type: ignore[no-untyped-call]
