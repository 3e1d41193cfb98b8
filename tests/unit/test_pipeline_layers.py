"""index_layers: threads or worker processes give the reference's ztocs byte for byte; the
`while_waiting` hook runs once, on the calling thread, after every layer was handed out."""

from __future__ import annotations

import threading

import pytest

from socikit.content.layout import LayoutSource
from socikit.oci.manifest import ImageIndex, ImageManifest
from socikit.pipeline.layers import index_layers
from tests.vectors import VECTORS_DIR, all_vectors

VECTOR = next(v for v in all_vectors() if v.name == "multi-platform")


def _layers(source: LayoutSource) -> list:
    root = source.resolve()
    index = ImageIndex.from_json(source.read_blob(root))
    layers = {}
    for entry in index.entries:
        for layer in ImageManifest.from_json(source.read_blob(entry)).layer_list:
            layers[layer.digest] = layer
    return list(layers.values())


@pytest.mark.parametrize("jobs", [1, 2])
def test_while_waiting_runs_once_after_hand_out(jobs: int) -> None:
    source = LayoutSource(VECTORS_DIR / "multi-platform" / "input", tag="latest")
    layers = _layers(source)
    assert len(layers) == 3
    calls: list[tuple[str, int]] = []
    started: list[str] = []

    def on_event(event) -> None:
        if type(event).__name__ == "LayerStarted":
            started.append(event.layer.digest)

    def while_waiting() -> None:
        calls.append((threading.current_thread().name, len(started)))

    outcomes = index_layers(
        source, layers, span_size=VECTOR.params["span_size"], min_layer_size=0,
        build_tool_identifier=VECTOR.params["build_tool_id"], cache=None, jobs=jobs, on_event=on_event,
        while_waiting=while_waiting,
    )  # fmt: skip
    assert calls and len(calls) == 1
    assert calls[0][0] == threading.current_thread().name
    if jobs > 1:  # worker processes: every layer was submitted (and announced) first
        assert calls[0][1] == len(layers)
    assert sorted(started) == sorted(layer.digest for layer in layers)
    golden = VECTOR.expected_ztocs()
    expected = {layer["layer_digest"]: golden[ztoc] for layer, ztoc in VECTOR.layer_ztoc_pairs()}
    assert {digest: outcome.ztoc for digest, outcome in outcomes.items()} == expected
