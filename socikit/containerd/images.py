"""containerd's image records over gRPC: a name mapped to the root descriptor of its content
(what `ctr image ls` lists)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from google.protobuf import field_mask_pb2

from socikit.containerd._proto import descriptor_pb2, images_pb2, images_pb2_grpc
from socikit.containerd.client import Containerd
from socikit.errors import ContainerdError
from socikit.oci.descriptor import Descriptor


@dataclass(frozen=True, slots=True)
class ImageRecord:
    name: str
    target: Descriptor
    labels: dict[str, str] = field(default_factory=dict)


def descriptor_to_proto(desc: Descriptor) -> descriptor_pb2.Descriptor:
    return descriptor_pb2.Descriptor(media_type=desc.media_type, digest=desc.digest, size=desc.size,
                                     annotations=dict(desc.annotations))


def descriptor_from_proto(message: Any) -> Descriptor:
    return Descriptor(media_type=message.media_type, digest=message.digest, size=int(message.size),
                      annotations=dict(message.annotations))


class ImageStore:
    """Image records of `client`'s namespace."""

    def __init__(self, client: Containerd) -> None:
        self.client = client
        self._stub: Any = client.stub(images_pb2_grpc.ImagesStub)

    def get(self, name: str) -> ImageRecord | None:
        try:
            image = self.client.call(f"get image {name}", self._stub.Get, images_pb2.GetImageRequest(name=name)).image
        except ContainerdError as exc:
            if exc.code == "NOT_FOUND":
                return None
            raise
        return ImageRecord(name=image.name, target=descriptor_from_proto(image.target), labels=dict(image.labels))

    def put(self, name: str, target: Descriptor) -> ImageRecord:
        """Create the record, or point an existing one at `target` (its labels are kept)."""
        image = images_pb2.Image(name=name, target=descriptor_to_proto(target))
        for _ in range(3):  # a record removed between Create and Update is created again
            try:
                made = self.client.call(f"create image {name}", self._stub.Create,
                                        images_pb2.CreateImageRequest(image=image)).image
            except ContainerdError as exc:
                if exc.code != "ALREADY_EXISTS":
                    raise
            else:
                return ImageRecord(name=made.name, target=descriptor_from_proto(made.target), labels=dict(made.labels))
            request = images_pb2.UpdateImageRequest(image=image, update_mask=field_mask_pb2.FieldMask(paths=["target"]))
            try:
                updated = self.client.call(f"update image {name}", self._stub.Update, request).image
            except ContainerdError as exc:
                if exc.code != "NOT_FOUND":
                    raise
            else:
                return ImageRecord(name=updated.name, target=descriptor_from_proto(updated.target),
                                   labels=dict(updated.labels))
        raise ContainerdError(f"image {name} keeps changing in {self.client.peer}; try again")


__all__ = ["ImageRecord", "ImageStore", "descriptor_from_proto", "descriptor_to_proto"]
