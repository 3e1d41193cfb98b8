"""index_layers: threads or worker processes give the reference's ztocs byte for byte; the
`while_waiting` hook runs once, on the calling thread, after every layer was handed out; the
largest layers start first; a layer read ahead holds a CPU token only while it has bytes."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest

from socikit.content.layout import LayoutSource
from socikit.oci.descriptor import Descriptor
from socikit.oci.digest import sha256_digest
from socikit.oci.manifest import ImageIndex, ImageManifest
from socikit.oci.mediatypes import MEDIA_TYPE_ZTOC
from socikit.pipeline.cache import ZtocCache
from socikit.pipeline.events import LayerOutcome
from socikit.pipeline.layers import _ReadAhead, index_layers
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
    _assert_digests_carried(outcomes)


def _assert_digests_carried(outcomes) -> None:
    """Each outcome carries its ztoc's digest (computed where the ztoc was built or read), and
    the descriptor made from it is the blob's own."""
    for outcome in outcomes.values():
        assert outcome.ztoc_digest == sha256_digest(outcome.ztoc)
        desc = outcome.ztoc_descriptor()
        assert (desc.digest, desc.size, desc.media_type) == (sha256_digest(outcome.ztoc), len(outcome.ztoc),
                                                            MEDIA_TYPE_ZTOC)  # fmt: skip


@pytest.mark.parametrize("jobs", [1, 2])
def test_cached_outcomes_carry_their_ztoc_digests(tmp_path: Path, jobs: int) -> None:
    source = LayoutSource(VECTORS_DIR / "multi-platform" / "input", tag="latest")
    layers = _layers(source)
    cache = ZtocCache(tmp_path)

    def run():
        return index_layers(
            source, layers, span_size=VECTOR.params["span_size"], min_layer_size=0,
            build_tool_identifier=VECTOR.params["build_tool_id"], cache=cache, jobs=jobs,
        )  # fmt: skip

    built, cached = run(), run()
    assert not any(o.cached for o in built.values()) and all(o.cached for o in cached.values())
    assert {d: o.ztoc for d, o in cached.items()} == {d: o.ztoc for d, o in built.items()}
    _assert_digests_carried(built)
    _assert_digests_carried(cached)


def test_an_outcome_without_a_carried_digest_hashes_its_ztoc() -> None:
    outcome = LayerOutcome(layer=Descriptor(media_type="x", digest="sha256:" + "0" * 64, size=1), ztoc=b"ztoc",
                           skipped=None)  # fmt: skip
    assert outcome.ztoc_descriptor().digest == sha256_digest(b"ztoc")
    skipped = LayerOutcome(layer=outcome.layer, ztoc=None, skipped="too small")
    assert skipped.ztoc_descriptor() is None


@pytest.mark.parametrize("jobs", [1, 2])
def test_largest_layers_start_first(jobs: int) -> None:
    source = LayoutSource(VECTORS_DIR / "multi-platform" / "input", tag="latest")
    layers = _layers(source)
    started: list[int] = []

    def on_event(event) -> None:
        if type(event).__name__ == "LayerStarted":
            started.append(event.layer.size)

    index_layers(
        source, layers, span_size=VECTOR.params["span_size"], min_layer_size=0,
        build_tool_identifier=VECTOR.params["build_tool_id"], cache=None, jobs=jobs, on_event=on_event,
    )  # fmt: skip
    assert started == sorted(started, reverse=True) and len(set(started)) == 3


class _Stream(io.RawIOBase):
    """Hands out `chunks`, waiting for `gate` before the end (a network that stalls)."""

    def __init__(self, chunks: list[bytes], gate: threading.Event) -> None:
        super().__init__()
        self.chunks = list(chunks)
        self.gate = gate

    def read(self, size: int = -1) -> bytes:
        if not self.chunks:
            self.gate.wait(10)
            return b""
        return self.chunks.pop(0)


def test_a_layer_waiting_for_bytes_holds_no_cpu_token() -> None:
    tokens = threading.BoundedSemaphore(1)
    gate = threading.Event()
    teed: list[bytes] = []
    reader = _ReadAhead(_Stream([b"a" * 10, b"b" * 10], gate), tee=teed.append, tokens=tokens)
    try:
        assert reader.read() == b"a" * 10  # bytes to inflate: the reader holds the core
        assert reader.read() == b"b" * 10
        assert not tokens.acquire(blocking=False)
        waiting = threading.Thread(target=reader.read)
        waiting.start()  # the stream stalls: the reader gives its token back while it waits
        assert tokens.acquire(timeout=10)
        tokens.release()
        gate.set()
        waiting.join(10)
        assert not waiting.is_alive()
    finally:
        gate.set()
        reader.close()
    assert teed == [b"a" * 10, b"b" * 10]  # the upload saw every byte, in order
    assert tokens.acquire(blocking=False)  # and nothing is held once the layer is done


def test_read_errors_reach_the_builder_in_order() -> None:
    class Broken(io.RawIOBase):
        calls = 0

        def read(self, size: int = -1) -> bytes:
            self.calls += 1
            if self.calls == 1:
                return b"first"
            raise OSError("connection reset")

    reader = _ReadAhead(Broken(), tee=None, tokens=None)
    try:
        assert reader.read() == b"first"
        with pytest.raises(OSError, match="connection reset"):
            reader.read()
    finally:
        reader.close()


def test_closing_does_not_wait_for_a_stalled_read() -> None:
    """A build that fails while its layer's next read waits on the network: the reader is let go
    (closing waits about a second, not the read timeout) and closes the stream when the read ends."""
    gate = threading.Event()
    stream = _Stream([b"x" * 10], gate)
    reader = _ReadAhead(stream, tee=None, tokens=None)
    assert reader.read() == b"x" * 10
    reader.close()  # the next read is stalled on `gate`
    assert not stream.closed
    gate.set()
    for _ in range(100):
        if stream.closed:
            break
        threading.Event().wait(0.05)
    assert stream.closed
