"""The store's records of served keys (socikit.store.records) and its registry retry policies."""

from __future__ import annotations

import json
import os
from pathlib import Path

from socikit.oci.descriptor import Descriptor
from socikit.store.config import parse_config
from socikit.store.layout import IndexedLayer, LayerForm, LayerKey
from socikit.store.records import LayerRecord, LayerRecords, dumps_record, loads_record
from socikit.store.resolve import LOOKUP_ATTEMPTS, store_remotes

LAYER = Descriptor(media_type="application/vnd.oci.image.layer.v1.tar+gzip", digest="sha256:" + "a" * 64, size=1234)
ZTOC = Descriptor(media_type="application/octet-stream", digest="sha256:" + "b" * 64, size=99,
                  annotations={"com.amazon.soci.image-layer-digest": LAYER.digest})
RECORD = LayerRecord(LayerKey("registry.example/app:1", LAYER.digest), LayerForm.BLOB_DIGEST, "sha256:" + "c" * 64,
                     IndexedLayer(LAYER, "sha256:" + "d" * 64, ZTOC, 2), 4096, False, (0, 3))


def test_a_record_round_trips() -> None:
    assert loads_record(dumps_record(RECORD)) == RECORD
    toc = LayerRecord(LayerKey("registry.example/app@sha256:" + "e" * 64, ZTOC.digest), LayerForm.TOC_DIGEST,
                      RECORD.manifest_digest, RECORD.layer, -1, True)
    assert loads_record(dumps_record(toc)) == toc


def test_records_on_disk(tmp_path: Path) -> None:
    records = LayerRecords(tmp_path / "layers")
    assert records.get(RECORD.key) is None
    records.put(RECORD)
    assert LayerRecords(tmp_path / "layers").get(RECORD.key) == RECORD  # another process (a restart)
    assert records.get(LayerKey(RECORD.key.reference, ZTOC.digest)) is None
    (path,) = (tmp_path / "layers").iterdir()
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    # a damaged record is ignored and removed: the key is resolved from the registry again
    document = json.loads(path.read_bytes())
    document["diff_size"] = "big"
    path.write_text(json.dumps(document))
    assert records.get(RECORD.key) is None and not path.exists()
    path.write_bytes(b"\0\0")
    assert records.get(RECORD.key) is None


def test_lookups_give_up_quickly_and_spans_follow_blob() -> None:
    """podman waits for a lookup: a registry that is down is given `lookup_timeout_sec` for all
    attempts; span and blob reads follow `[blob]` as the snapshotter's do."""
    remotes = store_remotes(parse_config("[resolver]\nlookup_timeout_sec = 4\n[blob]\nmax_retries = 2\n"
                                         "fetching_timeout_sec = 20\nmin_wait_msec = 50\n"))
    lookup, spans = remotes.metadata_retry, remotes.span_retry
    assert (lookup.attempts, lookup.deadline, lookup.read_timeout) == (LOOKUP_ATTEMPTS, 4.0, 4.0)
    assert lookup.connect_timeout <= 3.0 and lookup.max_delay <= 1.0
    assert (spans.attempts, spans.deadline, spans.initial_delay) == (3, 20.0, 0.05)
    remotes.close()
