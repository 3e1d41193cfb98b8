"""containerd's gRPC API as socikit speaks it: the Snapshots service the snapshotter serves and the
content, images, leases, diff and snapshots clients `socikit image rpull` drives.

Client modules, one job each: `client` (the channel, namespace/lease metadata, errors), `leases`,
`content`, `images`, `snapshots`, `diff`, `labels` (containerd's and nerdctl's label rules as pure
functions), `unpack` (containerd's unpacker), `credentials` (the hand-off to socikit's daemon)
and `rpull` (the command's library half). See docs/rpull.md.

`_proto/` holds our own .proto files (written from containerd's field numbers and service names)
and the stubs `scripts/gen_proto.py` generates from them."""
