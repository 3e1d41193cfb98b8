"""SOCI prefetch artifacts: the reference's merge rule and byte form."""

from __future__ import annotations

import pytest

from socikit.errors import FormatError
from socikit.soci.prefetch import PrefetchSpan, dumps_prefetch, loads_prefetch, merge_spans


@pytest.mark.parametrize(("spans", "merged"), [
    ([(0, 10), (5, 15)], [(0, 15)]),  # overlapping (the reference's table)
    ([(0, 10), (11, 20)], [(0, 20)]),  # adjacent
    ([(11, 20), (0, 9)], [(0, 9), (11, 20)]),  # sorted; a gap of one span stays a gap
    ([(3, 3), (3, 3)], [(3, 3)]),
    ([(0, 4), (1, 2)], [(0, 4)]),  # contained
])
def test_merge_follows_the_reference(spans: list[tuple[int, int]], merged: list[tuple[int, int]]) -> None:
    assert [(s.start_span, s.end_span) for s in merge_spans(PrefetchSpan(a, b) for a, b in spans)] == merged


@pytest.mark.parametrize(("priorities", "kept"), [((0, 0), 0), ((0, 3), 3), ((3, 0), 3), ((2, 5), 2), ((5, 2), 2)])
def test_merged_ranges_keep_the_more_urgent_priority(priorities: tuple[int, int], kept: int) -> None:
    """The reference: a lower priority value is more urgent; an omitted one (0) is no priority."""
    first, second = priorities
    merged = merge_spans([PrefetchSpan(0, 4, first), PrefetchSpan(3, 9, second)])
    assert merged == [PrefetchSpan(0, 9, kept)]


def test_bytes_are_go_compact_with_priority_left_out_when_zero() -> None:
    data = dumps_prefetch([PrefetchSpan(4, 6), PrefetchSpan(0, 1, 2)])
    assert data == (b'{"version":"1.0","prefetch_spans":[{"start_span":0,"end_span":1,"priority":2},'
                    b'{"start_span":4,"end_span":6}]}')
    assert loads_prefetch(data) == [PrefetchSpan(0, 1, 2), PrefetchSpan(4, 6, 0)]


@pytest.mark.parametrize("data", [
    b"not json", b"[]", b'{"version":"1.0"}', b'{"version":"2.0","prefetch_spans":[]}',
    b'{"version":"1.0","prefetch_spans":[{"start_span":5,"end_span":4}]}',
    b'{"version":"1.0","prefetch_spans":[{"start_span":-1,"end_span":4}]}',
    b'{"version":"1.0","prefetch_spans":[{"start_span":true,"end_span":4}]}',
    b'{"version":"1.0","prefetch_spans":[7]}',
])
def test_malformed_artifacts_are_format_errors(data: bytes) -> None:
    with pytest.raises(FormatError):
        loads_prefetch(data)
