"""The deep checks (fact sheet §2.2–2.6, §7.6): each indexed layer streamed against its ztoc.

A gzip layer's ztoc is first rebuilt from the blob (`validate.reproduce`, on worker processes when
the source can open blobs in them): when it comes out identical, every layer check passes by that
proof. Otherwise, or with `reproduce=False`, the layer is scanned check by check
(`validate.layerscan`), which names exactly what is wrong.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from socikit.content.base import ImageSource, OpensBlobsInWorkers
from socikit.errors import SocikitError, UnreadableInputError
from socikit.oci.descriptor import Descriptor
from socikit.validate.checks import short
from socikit.validate.graph_checks import LayerJob
from socikit.validate.layerscan import LayerScan, Problems, scan_layer
from socikit.validate.report import FILE_CONTENTS, LAYER_BLOB, SPAN_DIGESTS, TOC_HEADERS, CheckResult
from socikit.validate.reproduce import reproduce_layers
from socikit.ztoc.model import Ztoc


@dataclass(slots=True)
class DeepScan:
    """The deep checks' results, in job order, and what they read."""

    results: list[CheckResult] = field(default_factory=list)
    layers_scanned: int = 0
    layers_reproduced: int = 0
    bytes_scanned: int = 0
    files_checked: int = 0


def scan_layers(source: ImageSource, jobs: Sequence[LayerJob], *, sample: int | None, reproduce: bool) -> DeepScan:
    """Stream each job's layer from `source` and check it against its ztoc. `sample` None reads
    every file through spans, N a sample of N files per layer."""
    out = DeepScan()
    reproduced: list[LayerScan | None] = [None] * len(jobs)
    if reproduce:
        opener = source.blob_opener if isinstance(source, OpensBlobsInWorkers) else None
        reproduced = reproduce_layers(
            opener or source.open_blob,
            [(job.layer, job.ztoc) for job in jobs],
            sample=sample,
            workers=(os.cpu_count() or 1) if opener is not None else 1,
        )
    for job, scan in zip(jobs, reproduced, strict=True):
        job_subject = f"ztoc {short(job.ztoc_digest)} / layer {short(job.layer.digest)}"
        if scan is not None:
            out.layers_reproduced += 1
        else:
            scan = _scan_one(source, job.ztoc, job.layer, job_subject, sample, out.results)
            if scan is None:
                continue
        out.layers_scanned += 1
        out.bytes_scanned += scan.bytes_read
        out.files_checked += scan.files_checked
        out.results.extend(_scan_results(scan, job_subject, sample))
    return out


def _scan_one(
    source: ImageSource, ztoc: Ztoc, layer: Descriptor, job_subject: str, sample: int | None, results: list[CheckResult]
) -> LayerScan | None:
    """The item-by-item scan of one layer; None (with the failure recorded) if it cannot run."""
    try:
        stream = source.open_blob(layer)
    except UnreadableInputError:
        raise  # the machine's fault, not the layer's
    except SocikitError as exc:
        results.append(CheckResult(LAYER_BLOB, False, f"cannot be read: {exc}", job_subject))
        return None
    try:
        return scan_layer(stream, ztoc, layer_digest=layer.digest, layer_size=layer.size, sample=sample)
    except SocikitError as exc:
        results.append(CheckResult(LAYER_BLOB, False, f"cannot be scanned: {exc}", job_subject))
        return None
    except OSError as exc:  # a read of a local file failed part-way (an I/O error)
        raise UnreadableInputError(f"cannot read layer {layer.digest}: {exc.strerror or exc}") from None
    finally:
        stream.close()


def _scan_results(scan: LayerScan, job_subject: str, sample: int | None) -> list[CheckResult]:
    scope = "all" if sample is None else f"a sample of {scan.files_checked}"
    contents_ok = scan.content_note or (
        f"{scope} files ({scan.files_checked}) read through {scan.contents.checked} spans equal the tar"
    )
    return [
        _from_problems(LAYER_BLOB, scan.blob, job_subject, "blob digest and size match", "blob"),
        _from_problems(
            SPAN_DIGESTS, scan.spans, job_subject, f"all {scan.spans.checked} span digests match", "span digests"
        ),
        _from_problems(
            TOC_HEADERS,
            scan.headers,
            job_subject,
            f"all {scan.headers.checked} TOC entries match their tar headers",
            "TOC entries",
        ),
        _from_problems(FILE_CONTENTS, scan.contents, job_subject, contents_ok, "spans"),
    ]


def _from_problems(name: str, problems: Problems, job_subject: str, ok_text: str, what: str) -> CheckResult:
    if problems.ok:
        if problems.unchecked:
            return CheckResult(
                name,
                True,
                f"{problems.checked} {what} right; {problems.unchecked} not reached "
                "(the layer does not decompress that far)",
                job_subject,
            )
        return CheckResult(name, True, ok_text, job_subject)
    return CheckResult(name, False, problems.summary(what), job_subject)


__all__ = ["DeepScan", "scan_layers"]
