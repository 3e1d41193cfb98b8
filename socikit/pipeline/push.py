"""`socikit push --v1`: send SOCI v1 indexes built by `socikit create` (local store) to the
registry that holds their image, ztocs first, the index last (Referrers API or fallback tag)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from socikit.errors import ImageError, ImageReferenceError
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor
from socikit.oci.platform import host_platform, matches, parse_platform
from socikit.pipeline.events import Event, Message
from socikit.pipeline.store import LocalStore, RefQuery, StoredIndex
from socikit.registry.referrers import fetch_referrers, push_referrer
from socikit.registry.store import RegistryOptions, open_registry_client
from socikit.soci import discover

EXISTING_INDEX_POLICIES = ("warn", "skip", "allow")


@dataclass(frozen=True, slots=True)
class PushOutcome:
    index: StoredIndex
    pushed: bool
    reason: str = ""


def select_indexes(stored: list[StoredIndex], *, platforms: tuple[str, ...], all_platforms: bool) -> list[StoredIndex]:
    """The newest stored index per platform, for the requested platforms."""
    newest: dict[str, StoredIndex] = {}
    for entry in sorted(stored, key=lambda s: s.created):
        newest[str(entry.platform)] = entry
    candidates = list(newest.values())
    if all_platforms:
        return candidates
    if platforms:
        wanted = [parse_platform(p) for p in platforms]
    elif len(candidates) == 1:
        return candidates
    else:
        wanted = [host_platform()]
    chosen = [c for c in candidates if c.platform is not None and any(matches(w, c.platform) for w in wanted)]
    if not chosen:
        present = ", ".join(sorted(newest)) or "none"
        raise ImageError(f"no stored SOCI index for the requested platform(s); stored platforms: {present}")
    return chosen


def push_v1(
    reference: str,
    *,
    store: LocalStore,
    registry: RegistryOptions,
    platforms: tuple[str, ...] = (),
    all_platforms: bool = False,
    existing_index: str = "warn",
    validate: bool = True,
    on_event: Callable[[Event], None] | None = None,
) -> list[PushOutcome]:
    if existing_index not in EXISTING_INDEX_POLICIES:
        raise ValueError(f"existing_index must be one of {EXISTING_INDEX_POLICIES}")
    emit = on_event or (lambda event: None)
    # The reference picks stored records (normalized; a digest in it may be a unique prefix);
    # the registry is then addressed by repository and each record's manifest digest only.
    query = RefQuery.parse(reference)
    ref = query.reference
    if not ref.is_registry:
        raise ImageReferenceError(f"push needs a registry reference, not {reference}")
    stored = [s for s in store.indexes(ref=query) if s.version == "v1"]
    if not stored:
        raise ImageError(f"the local store has no SOCI v1 index for {ref}; build one with `socikit create {ref}`")
    client = open_registry_client(ref.host, registry)
    outcomes = []
    for entry in select_indexes(stored, platforms=platforms, all_platforms=all_platforms):
        existing = discover.v1_indexes(fetch_referrers(client, ref.repository, entry.manifest_digest, discover.V1))
        if existing and existing_index != "allow":
            digests = ", ".join(d.digest for d in existing)
            if existing_index == "skip":
                emit(Message(f"{entry.platform}: skipped, the registry already has SOCI index(es) {digests}"))
                outcomes.append(PushOutcome(entry, pushed=False, reason="existing index"))
                continue
            emit(Message(f"warning: {entry.platform}: the registry already has SOCI index(es) {digests}"))
        data = store.read_blob(entry.descriptor.digest)
        if validate:
            from socikit.validate.prewrite import validate_soci_index

            validate_soci_index(data, "v1")
        index = store.read_index(entry.descriptor.digest)
        blobs = [Descriptor(media_type=mt.ARTIFACT_TYPE_SOCI_INDEX_V1, digest=mt.EMPTY_JSON_DIGEST,
                            size=len(mt.EMPTY_JSON_BLOB)), *index.ztocs, *index.prefetches]
        for blob in blobs:
            client.push_blob(ref.repository, blob, store.read_blob(blob.digest))
        desc = Descriptor(media_type=mt.MEDIA_TYPE_OCI_MANIFEST, digest=entry.descriptor.digest, size=len(data),
                          artifact_type=mt.ARTIFACT_TYPE_SOCI_INDEX_V1)
        push_referrer(client, ref.repository, data, desc, entry.manifest_digest)
        emit(Message(f"{entry.platform}: pushed SOCI index {desc.digest} for {entry.manifest_digest}"))
        outcomes.append(PushOutcome(entry, pushed=True))
    return outcomes
