"""Progress events the pipeline emits, and the outcome of one layer they carry; the CLI renders
them (the library never prints)."""

from __future__ import annotations

from dataclasses import dataclass

from socikit.oci.descriptor import Descriptor
from socikit.oci.mediatypes import MEDIA_TYPE_ZTOC


@dataclass(frozen=True, slots=True)
class LayerOutcome:
    """What happened to one layer: a ztoc (bytes) or the reason it was skipped."""

    layer: Descriptor
    ztoc: bytes | None
    skipped: str | None
    spans: int = 0
    files: int = 0
    seconds: float = 0.0
    cached: bool = False
    uploaded: bool = False  # the layer went to the destination from the stream that indexed it
    # The digest of `ztoc`, computed where it was built (a worker process, beside the other
    # layers) so that writing the result does not hash every ztoc again.
    ztoc_digest: str | None = None

    def ztoc_descriptor(self) -> Descriptor | None:
        """The ztoc blob's descriptor (None for a skipped layer)."""
        if self.ztoc is None:
            return None
        digest = self.ztoc_digest
        if digest is None:
            from socikit.oci.digest import sha256_digest

            digest = sha256_digest(self.ztoc)
        return Descriptor(media_type=MEDIA_TYPE_ZTOC, digest=digest, size=len(self.ztoc))


@dataclass(frozen=True, slots=True)
class LayerStarted:
    layer: Descriptor


@dataclass(frozen=True, slots=True)
class LayerFinished:
    outcome: LayerOutcome


@dataclass(frozen=True, slots=True)
class Message:
    """A step of the conversion worth telling the user (e.g. "writing oci:out:latest")."""

    text: str


Event = LayerStarted | LayerFinished | Message

__all__ = ["Event", "LayerFinished", "LayerOutcome", "LayerStarted", "Message"]
