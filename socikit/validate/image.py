"""Validate a SOCI-enabled image read from any `ImageSource` (fact sheet §5–§7).

Four steps, each its own module: `collect` reads the image graph (root, platform manifests, SOCI
v2 and v1 indexes and how they were found, ztocs, read failures); `graph_checks` judges it
without reading; with `deep`/`sample`, `deep` streams each indexed layer once against its ztoc;
`verdict` says whether a default soci-snapshotter would lazily load the image.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from socikit.content.base import ImageSource
from socikit.validate.collect import collect_image
from socikit.validate.deep import DeepScan, scan_layers
from socikit.validate.graph_checks import check_graph
from socikit.validate.report import Report
from socikit.validate.verdict import summarize

if TYPE_CHECKING:
    from socikit.registry.client import RegistryClient


def validate_image(
    source: ImageSource,
    *,
    client: RegistryClient | None = None,
    repo: str | None = None,
    deep: bool = False,
    sample: int = 0,
    reproduce: bool = True,
) -> Report:
    """Validate the SOCI artifacts of the image `source` resolves to.

    `client`/`repo` enable SOCI v1 discovery through the Referrers API (default: the source's
    own client and repository when it is a registry source). `deep` streams every indexed layer
    once and reads all files through spans; `sample=N` does the same pass but reads only N files
    per layer through spans (span digests and TOC headers are always checked in full when a layer
    is streamed). A gzip layer's ztoc is first rebuilt from the blob: when it comes out identical
    every layer check passes at building speed (`reproduce.reproduce_layer`); otherwise, or with
    `reproduce=False`, the layer is scanned check by check.

    Broken artifacts are reported, never raised. Not reaching the image at all is no property of
    it and raises the source's SocikitError: a reference that does not resolve (no such image or
    tag, an unreachable registry, a TLS failure) or a root that cannot be read."""
    graph = collect_image(source, client=client, repo=repo)
    findings = check_graph(graph)
    scanned = DeepScan()
    if deep or sample > 0:
        scanned = scan_layers(source, findings.layer_jobs, sample=None if deep else sample, reproduce=reproduce)
    checks = (*findings.results, *scanned.results)
    return Report(
        image=graph.root.digest,
        checks=checks,
        summary=summarize(graph.images, findings.v2, findings.v1, checks),
        deep=deep,
        sample=sample,
        stats={
            "manifests": len(graph.images),
            "soci_indexes": len(findings.v2) + len(findings.v1),
            "ztocs": len(graph.ztocs),
            "layers_scanned": scanned.layers_scanned,
            "layers_reproduced": scanned.layers_reproduced,
            "bytes_scanned": scanned.bytes_scanned,
            "files_checked": scanned.files_checked,
        },
    )


__all__ = ["validate_image"]
