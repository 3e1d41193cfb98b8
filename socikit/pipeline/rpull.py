"""`socikit image rpull`: pull an image from a registry into containerd through containerd's own
gRPC API, unpacking it for a snapshotter with the labels nerdctl adds, so a remote snapshotter
(socikit's, or the reference soci daemon) can mount layers lazily instead of downloading them.

The registry side is socikit's own client (Docker config credentials, `--user`, TLS options).
Everything written to containerd happens under a lease: content (index, manifest, config with
containerd's GC labels), then the unpack, then the image record. A failure before the record
exists leaves nothing behind once the lease is gone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from socikit.containerd import labels as lb
from socikit.containerd.client import DEFAULT_ADDRESS, DEFAULT_NAMESPACE, Containerd
from socikit.containerd.content import ContentStore, stream_chunks
from socikit.containerd.credentials import DEFAULT_SNAPSHOTTER_ADDRESS, HandOff, hand_over
from socikit.containerd.images import ImageStore
from socikit.containerd.leases import lease
from socikit.containerd.snapshots import Snapshots
from socikit.containerd.unpack import LayerOutcome, Unpacker, UnpackPlan, plan_unpack
from socikit.content.reference import ImageReference, parse_reference
from socikit.errors import ContainerdError, ImageError, ImageReferenceError
from socikit.oci import mediatypes as mt
from socikit.oci.descriptor import Descriptor, Platform
from socikit.oci.digest import is_digest, verify_blob
from socikit.oci.manifest import ImageConfig, ImageIndex, ImageManifest, validate_media_type
from socikit.oci.platform import format_platform, host_platform, matches, normalize, parse_platform
from socikit.registry.client import RegistryClient
from socikit.registry.options import RegistryOptions

# containerd's built-in snapshotters run inside containerd: there is no daemon to hand
# credentials to.
BUILTIN_SNAPSHOTTERS = frozenset({"overlayfs", "native", "btrfs", "zfs", "devmapper", "aufs", "blockfile", "erofs",
                                  "windows", "windows-lcow"})
UNPACKABLE = frozenset({"gzip", "uncompressed", "zstd"})
MAX_CONFIG = 16 << 20


@dataclass(frozen=True, slots=True)
class RpullOptions:
    snapshotter: str = "socikit"
    address: str = DEFAULT_ADDRESS
    namespace: str = DEFAULT_NAMESPACE
    soci_index_digest: str = ""
    platform: str | None = None  # None: the host's
    registry: RegistryOptions = field(default_factory=RegistryOptions)
    snapshotter_address: str = DEFAULT_SNAPSHOTTER_ADDRESS


@dataclass(frozen=True, slots=True)
class LayerResult:
    """One layer: `state` is "lazy" (the snapshotter serves it remotely), "downloaded" (fetched
    and unpacked), "unpacked" (unpacked from a blob containerd already had), "present" (its
    snapshot existed) or "stored" (content only: the blob is in the content store)."""

    digest: str
    size: int
    chain_id: str
    state: str
    downloaded: int


@dataclass(frozen=True, slots=True)
class RpullResult:
    name: str
    target: Descriptor
    manifest: Descriptor
    config: Descriptor
    platform: str
    snapshotter: str
    unpacked: bool
    layers: tuple[LayerResult, ...]
    notes: tuple[str, ...] = ()

    @property
    def downloaded(self) -> int:
        return sum(layer.downloaded for layer in self.layers)

    def to_json(self) -> dict[str, object]:
        return {
            "image": self.name,
            "digest": self.target.digest,
            "manifest": self.manifest.digest,
            "config": self.config.digest,
            "platform": self.platform,
            "snapshotter": self.snapshotter,
            "unpacked": self.unpacked,
            "layers": [{"digest": x.digest, "size": x.size, "chain_id": x.chain_id, "state": x.state,
                        "downloaded": x.downloaded} for x in self.layers],
            "lazy_layers": sum(1 for x in self.layers if x.state == "lazy"),
            "bytes_downloaded": self.downloaded,
            "notes": list(self.notes),
        }


def image_name(ref: ImageReference) -> str:
    """The image record name, as containerd's clients normalize a reference: fully qualified;
    a reference with both tag and digest keeps only the digest."""
    if ref.digest:
        return f"{ref.name}@{ref.digest}"
    return f"{ref.name}:{ref.tag}"


def parse_registry_reference(text: str) -> ImageReference:
    ref = parse_reference(text)
    if not ref.is_registry:
        raise ImageReferenceError(f"rpull pulls from a registry: {text!r} is a {ref.transport}: reference")
    return ref


def _short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


def _layer_result(outcome: LayerOutcome) -> LayerResult:
    state = {"remote": "lazy", "present": "present"}.get(outcome.state)
    if state is None:
        state = "downloaded" if outcome.downloaded else "unpacked"
    return LayerResult(digest=outcome.layer.digest, size=outcome.layer.size, chain_id=outcome.chain_id, state=state,
                       downloaded=outcome.downloaded)


def describe_layer(result: LayerResult, snapshotter: str) -> str:
    head = f"layer {_short(result.digest)} ({result.size} bytes)"
    return head + {
        "lazy": f": served lazily by {snapshotter}",
        "downloaded": f": downloaded {result.downloaded} bytes, unpacked",
        "unpacked": ": unpacked (blob already in containerd)",
        "present": ": already unpacked",
        "stored": f": stored ({result.downloaded} bytes downloaded)" if result.downloaded else ": already stored",
    }[result.state]


class _Pull:
    """One rpull: the registry reads and containerd writes, in order."""

    def __init__(self, ref: ImageReference, options: RpullOptions, registry: RegistryClient, client: Containerd,
                 say: Callable[[str], None]) -> None:
        self.ref = ref
        self.name = image_name(ref)
        self.options = options
        self.registry = registry
        self.client = client
        self.content = ContentStore(client)
        self.say = say

    def _manifest_bytes(self, desc: Descriptor) -> bytes:
        data, _ = self.registry.get_manifest(self.ref.repository, desc.digest)
        verify_blob(data, digest=desc.digest, size=desc.size, where=f"manifest {desc.digest} of {self.name}")
        return data

    def resolve(self, wanted: Platform) -> tuple[Descriptor, bytes, ImageIndex | None, Descriptor, bytes]:
        """(root descriptor, root bytes, index or None, manifest descriptor, manifest bytes)."""
        root_data, root = self.registry.get_manifest(self.ref.repository, self.ref.digest or self.ref.tag)
        validate_media_type(root_data, root.media_type)
        if root.media_type in mt.INDEX_MEDIA_TYPES:
            index = ImageIndex.from_json(root_data)
            candidates = [entry for entry in index.entries if entry.media_type in mt.MANIFEST_MEDIA_TYPES
                          and entry.platform is not None and matches(wanted, entry.platform)]
            # First match in index order, as containerd picks; an artifact (a SOCI index carries
            # the platform it indexes) only when nothing else matches.
            chosen = next((e for e in candidates if not e.artifact_type), candidates[0] if candidates else None)
            if chosen is None:
                have = sorted({format_platform(e.platform) for e in index.entries if e.platform is not None})
                raise ImageError(f"{self.name} has no manifest for {format_platform(wanted)} "
                                 f"(it has {', '.join(have) or 'none with a platform'}); pick one with --platform")
            manifest_data = self._manifest_bytes(chosen)
            validate_media_type(manifest_data, chosen.media_type)
            return root, root_data, index, chosen, manifest_data
        if root.media_type in mt.MANIFEST_MEDIA_TYPES:
            return root, root_data, None, root, root_data
        raise ImageError(f"{self.name} is a {root.media_type or 'document without a media type'}, "
                         "not an image manifest or index")

    def run(self) -> RpullResult:
        # The lease comes first: it is the cheapest call, so an unreachable containerd is
        # reported before anything is downloaded.
        with lease(self.client, prefix="socikit-rpull"):
            return self._run()

    def _check_snapshotter(self) -> None:
        """Refuse a snapshotter containerd does not have before any layer is downloaded."""
        try:
            Snapshots(self.client, self.options.snapshotter).stat("socikit-rpull-probe")
        except ContainerdError as exc:
            if exc.code == "INVALID_ARGUMENT":
                raise ContainerdError(f"containerd at {self.options.address} has no snapshotter "
                                      f"{self.options.snapshotter!r} (see `ctr plugins ls`)", code=exc.code) from None
            raise

    def _run(self) -> RpullResult:
        opts = self.options
        wanted = normalize(parse_platform(opts.platform)) if opts.platform else host_platform()
        root, root_data, index, manifest_desc, manifest_data = self.resolve(wanted)
        manifest = ImageManifest.from_json(manifest_data)
        if manifest.config.size > MAX_CONFIG:
            raise ImageError(f"the config of {self.name} is {manifest.config.size} bytes; "
                             f"refusing more than {MAX_CONFIG}")
        config_data = self.registry.get_blob(self.ref.repository, manifest.config)
        config = ImageConfig.from_json(config_data)
        image_platform = config.platform()
        if index is None and not matches(wanted, image_platform):
            raise ImageError(f"{self.name} is an image for {format_platform(image_platform)}, "
                             f"not {format_platform(wanted)}; pick it with --platform")
        unpack = matches(host_platform(), image_platform)
        layers = manifest.layer_list
        plan = None
        if unpack:
            for layer in layers:
                if lb.is_layer_type(layer.media_type) and mt.compression_of_layer(layer.media_type) not in UNPACKABLE:
                    raise ImageError(f"layer {layer.digest} of {self.name} has media type {layer.media_type}, "
                                     "which containerd cannot unpack")
            plan = plan_unpack(image_ref=self.name, manifest_digest=manifest_desc.digest, config=manifest.config,
                               manifest_layers=layers, diff_ids=config.diff_ids,
                               soci_index_digest=opts.soci_index_digest)
            self._check_snapshotter()
        self.say(f"{self.name}: {root.digest}, manifest {_short(manifest_desc.digest)} for "
                 f"{format_platform(image_platform)}, {len(layers)} layers")
        notes: list[str] = []
        self.content.put(manifest.config, config_data, labels={})
        self.content.put(manifest_desc, manifest_data,
                         labels=lb.children_gc_labels(lb.manifest_children(manifest.config, layers)))
        if index is not None:
            self.content.put(root, root_data, labels=lb.children_gc_labels(index.entries))
        if plan is not None:
            handed = self._hand_over_credentials()
            if handed is not None:
                notes.append(handed.note)
                self.say(handed.note)
            results = self._unpack(plan)
        else:
            self.say(f"{format_platform(image_platform)} is not this host's platform: "
                     "storing content without unpacking")
            results = self._store_layers(layers)
        ImageStore(self.client).put(self.name, root)
        return RpullResult(name=self.name, target=root, manifest=manifest_desc, config=manifest.config,
                           platform=format_platform(image_platform), snapshotter=opts.snapshotter, unpacked=unpack,
                           layers=tuple(results), notes=tuple(notes))

    def _hand_over_credentials(self) -> HandOff | None:
        registry = self.options.registry
        if not registry.user or self.options.snapshotter in BUILTIN_SNAPSHOTTERS:
            return None
        username, sep, inline = registry.user.partition(":")
        secret = registry.password if registry.password is not None else (inline if sep else "")
        return hand_over(self.options.snapshotter_address, image_ref=self.name, host=self.ref.host,
                         username=username, secret=secret)

    def _unpack(self, plan: UnpackPlan) -> list[LayerResult]:
        results: list[LayerResult] = []

        def report(outcome: LayerOutcome) -> None:
            result = _layer_result(outcome)
            results.append(result)
            self.say(describe_layer(result, self.options.snapshotter))

        unpacker = Unpacker(self.client, self.options.snapshotter,
                            lambda layer: self.registry.get_blob_stream(self.ref.repository, layer), on_layer=report)
        unpacker.unpack(plan)
        return results

    def _store_layers(self, layers: tuple[Descriptor, ...]) -> list[LayerResult]:
        results = []
        for layer in layers:
            downloaded = 0
            info = self.content.info(layer.digest)
            if info is None or info.size != layer.size:
                counter = [0]
                with self.registry.get_blob_stream(self.ref.repository, layer) as stream:
                    self.content.write(layer, stream_chunks(stream, counter))
                downloaded = counter[0]
            result = LayerResult(digest=layer.digest, size=layer.size, chain_id="", state="stored",
                                 downloaded=downloaded)
            results.append(result)
            self.say(describe_layer(result, self.options.snapshotter))
        return results


def rpull(reference: str, options: RpullOptions | None = None, *,
          on_progress: Callable[[str], None] | None = None) -> RpullResult:
    """Pull `reference` (HOST/REPO[:TAG|@DIGEST]) into containerd and unpack it for the
    snapshotter; see the module docstring. Raises SocikitError subclasses with one-line messages."""
    from socikit.registry.store import open_registry_client

    opts = options or RpullOptions()
    ref = parse_registry_reference(reference)
    if opts.soci_index_digest and not is_digest(opts.soci_index_digest):
        raise ImageReferenceError(f"--soci-index-digest {opts.soci_index_digest!r} is not a sha256 digest")
    if not opts.snapshotter:
        raise ImageError("the snapshotter name must not be empty")
    say = on_progress or (lambda _text: None)
    with Containerd(opts.address, namespace=opts.namespace) as client, \
            open_registry_client(ref.host, opts.registry) as registry:
        return _Pull(ref, opts, registry, client, say).run()


__all__ = ["BUILTIN_SNAPSHOTTERS", "LayerResult", "RpullOptions", "RpullResult", "describe_layer", "image_name",
           "parse_registry_reference", "rpull"]
