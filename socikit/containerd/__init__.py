"""containerd's gRPC API as socikit speaks it: the Snapshots service the snapshotter serves and the
content, images, leases, diff and snapshots clients `socikit image rpull` drives.

`_proto/` holds our own .proto files (written from containerd's field numbers and service names)
and the stubs `scripts/gen_proto.py` generates from them."""
