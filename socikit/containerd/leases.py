"""Leases: what a pull writes into containerd (blobs, snapshots) is held by a lease until the
image record and the GC labels reference it, so neither a concurrent garbage collection nor a
failed pull leaves half an image behind: deleting the lease releases whatever nothing else holds.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import secrets
from collections.abc import Iterator

from socikit.containerd._proto import leases_pb2, leases_pb2_grpc
from socikit.containerd.client import Containerd
from socikit.errors import ContainerdError

# The label containerd reads to drop a lease on its own (RFC 3339), so a killed pull does not
# pin its content forever; containerd's own pulls default to 24 hours as well.
EXPIRE_LABEL = "containerd.io/gc.expire"
DEFAULT_EXPIRY = dt.timedelta(hours=24)


def expiry_label(now: dt.datetime, after: dt.timedelta = DEFAULT_EXPIRY) -> str:
    """The `containerd.io/gc.expire` value for a lease made at `now` (UTC, RFC 3339, seconds)."""
    return (now + after).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def create_lease(client: Containerd, *, prefix: str = "socikit", expire_after: dt.timedelta = DEFAULT_EXPIRY) -> str:
    """Create a lease with an expiry label; returns its id."""
    stub = client.stub(leases_pb2_grpc.LeasesStub)
    request = leases_pb2.CreateRequest(
        id=f"{prefix}-{secrets.token_hex(8)}",
        labels={EXPIRE_LABEL: expiry_label(dt.datetime.now(dt.UTC), expire_after)},
    )
    response = client.call("create lease", stub.Create, request)
    return str(response.lease.id)


def delete_lease(client: Containerd, lease_id: str, *, sync: bool = False) -> None:
    """Delete a lease (already gone is fine). With `sync`, containerd also collects what only
    the lease held before answering."""
    stub = client.stub(leases_pb2_grpc.LeasesStub)
    saved, client.lease = client.lease, None  # the delete itself must not run under the lease
    try:
        client.call("delete lease", stub.Delete, leases_pb2.DeleteRequest(id=lease_id, sync=sync))
    except ContainerdError as exc:
        if exc.code != "NOT_FOUND":
            raise
    finally:
        client.lease = saved


@contextlib.contextmanager
def lease(client: Containerd, *, prefix: str = "socikit") -> Iterator[str]:
    """Hold a new lease on `client` for the duration of the block, then delete it. When the block
    fails, what it wrote and nothing else references is collected before the error propagates."""
    lease_id = create_lease(client, prefix=prefix)
    client.lease = lease_id
    try:
        yield lease_id
    except BaseException:
        client.lease = None
        with contextlib.suppress(ContainerdError):  # the original failure is the one to report
            delete_lease(client, lease_id, sync=True)
        raise
    client.lease = None
    delete_lease(client, lease_id)


__all__ = ["DEFAULT_EXPIRY", "EXPIRE_LABEL", "create_lease", "delete_lease", "expiry_label", "lease"]
