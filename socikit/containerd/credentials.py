"""Hand registry credentials to socikit's snapshotter daemon for one image.

`socikit image rpull --user` resolves the image with the credentials itself; the snapshotter
fetches spans of that image's layers later and needs them too. They travel over the daemon's
local socket (socikit's `Credentials/Put` side channel), are kept in its memory only, and never
appear in a log, an error message or a child process's arguments. A daemon that is not
socikit's (the reference one answers UNIMPLEMENTED) or is not running is reported, not fatal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc

from socikit.containerd._proto import socikit_credentials_pb2, socikit_credentials_pb2_grpc
from socikit.containerd.client import grpc_target

DEFAULT_SNAPSHOTTER_ADDRESS = "/run/socikit/snapshotter.sock"
PUT_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class HandOff:
    """The outcome of a hand-off: `delivered`, and one line saying what happened."""

    delivered: bool
    note: str


def hand_over(address: str, *, image_ref: str, host: str, username: str, secret: str,
              timeout: float = PUT_TIMEOUT) -> HandOff:
    """Put `username`/`secret` for pulls of `image_ref` from `host` into the daemon at `address`."""
    request = socikit_credentials_pb2.PutCredentialsRequest(image_ref=image_ref, host=host, username=username,
                                                            secret=secret)
    with grpc.insecure_channel(grpc_target(address)) as channel:
        make_stub: Any = socikit_credentials_pb2_grpc.CredentialsStub  # generated code is untyped
        stub = make_stub(channel)
        try:
            stub.Put(request, timeout=timeout)
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else None
            if code == grpc.StatusCode.UNIMPLEMENTED:
                return HandOff(False, f"credentials not handed over: the snapshotter daemon at {address} is not "
                                      "socikit's (it has no Credentials service); it must find them itself")
            if code == grpc.StatusCode.UNAVAILABLE:
                return HandOff(False, f"credentials not handed over: no snapshotter daemon answers at {address}")
            name = code.name if code is not None else "error"
            return HandOff(False, f"credentials not handed over: the snapshotter daemon at {address} "
                                  f"refused them ({name})")
    return HandOff(True, f"credentials for {image_ref} handed to the snapshotter daemon at {address}")


__all__ = ["DEFAULT_SNAPSHOTTER_ADDRESS", "HandOff", "hand_over"]
