"""Progress events the pipeline emits; the CLI renders them (the library never prints)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from socikit.oci.descriptor import Descriptor

if TYPE_CHECKING:
    from socikit.pipeline.layers import LayerOutcome


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
