"""Progress events the pipeline emits, and the outcome of one layer they carry; the CLI renders
them (the library never prints)."""

from __future__ import annotations

from dataclasses import dataclass

from socikit.oci.descriptor import Descriptor


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
