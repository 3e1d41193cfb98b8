"""The use/release reference count (socikit.store.usecount), driven by the notification sequences
podman 4.3.1 sends (tests/integration/test_podman_store.py records them with strace)."""

from __future__ import annotations

import errno
import threading

from socikit.store.layout import LayerKey
from socikit.store.usecount import ANSWER_ERRNO, UseCounts

BASE = LayerKey("127.0.0.1:5000/app:1", "sha256:" + "11" * 32)
TOP = LayerKey("127.0.0.1:5000/app:1", "sha256:" + "22" * 32)


def test_both_notifications_are_answered_enoent() -> None:
    counts: UseCounts[LayerKey] = UseCounts()
    assert ANSWER_ERRNO == errno.ENOENT
    assert counts.use(BASE) == errno.ENOENT
    assert counts.release(BASE) == errno.ENOENT
    assert counts.release(BASE) == errno.ENOENT  # even one too many


def test_a_pull_leaves_one_user_per_layer_and_rmi_none() -> None:
    idle: list[LayerKey] = []
    counts = UseCounts(on_idle=idle.append)
    # podman pull of a two-layer image: a use per lookup, a use per layer created from the store,
    # then the lookups' releases when the copy ends
    for key in (TOP, BASE, BASE, TOP):
        counts.use(key)
    for key in (TOP, BASE):
        counts.release(key)
    assert counts.in_use() == {TOP: 1, BASE: 1}
    assert idle == []
    # podman save: a use and a release per layer read
    for key in (BASE, TOP):
        counts.use(key)
        counts.release(key)
    assert counts.in_use() == {TOP: 1, BASE: 1}
    # podman rmi: a release per deleted layer
    counts.release(TOP)
    counts.release(BASE)
    assert counts.in_use() == {} and counts.count(BASE) == 0
    assert idle == [TOP, BASE]
    assert (counts.uses, counts.releases, counts.unmatched_releases) == (6, 6, 0)


def test_a_release_without_a_use_is_counted_apart() -> None:
    idle: list[LayerKey] = []
    counts = UseCounts(on_idle=idle.append)
    counts.release(BASE)
    counts.use(BASE)
    assert counts.count(BASE) == 1 and counts.unmatched_releases == 1 and idle == []


def test_counts_hold_under_concurrent_notifications() -> None:
    counts: UseCounts[LayerKey] = UseCounts()

    def work() -> None:
        for _ in range(2000):
            counts.use(BASE)
            counts.use(TOP)
            counts.release(BASE)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counts.in_use() == {TOP: 16000}
    assert counts.unmatched_releases == 0
