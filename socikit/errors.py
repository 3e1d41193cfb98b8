"""Exception tree of socikit.

    SocikitError                      base; the CLI turns it into one line and exit 1
    ├── FormatError                   bytes that do not parse (ztoc, zinfo, JSON, tar)
    │   ├── ZtocFormatError           a ztoc flatbuffer or zinfo blob that cannot be decoded
    │   └── TarFormatError            a tar stream that Go's archive/tar would reject
    ├── LayerError                    a layer blob that cannot be indexed
    │   ├── CompressedDataError       corrupt/truncated deflate data, CRC or ISIZE mismatch
    │   │   └── SpanDigestError       a span's compressed bytes differ from its digest in the ztoc
    │   ├── DigestMismatchError       the blob's sha256 is not the expected digest
    │   └── UnsupportedLayerError     a layer the ztoc format cannot describe (zstd, sparse,
    │                                 global PAX headers): skipped with a reason, never a crash
    ├── FileNotInZtocError            a path that names no entry of a ztoc's TOC
    ├── ImageError                    image/reference problems (missing blob, bad manifest, platform)
    │   ├── ImageReferenceError       an image reference that does not parse
    │   └── UnreadableInputError      a file of the input that is there but cannot be read
    │                                 (permission denied, I/O error): the machine's fault, not the image's
    ├── RegistryError                 talking to a registry failed (network, TLS, retries exhausted)
    │   ├── AuthError                 credentials were refused (or none were given where needed)
    │   └── RegistryStatusError       an unexpected HTTP status (`.status`, OCI error `.code`)
    │       └── BlobNotFoundError     no such blob or manifest (404, BLOB_UNKNOWN, MANIFEST_UNKNOWN);
    │                                 a gRPC service maps it to NOT_FOUND
    ├── ContainerdError               a containerd (or snapshotter) gRPC call failed; `code` names
    │                                 the gRPC status (NOT_FOUND, ALREADY_EXISTS, UNAVAILABLE, …)
    ├── InvalidArtifactError          validation of an artifact failed
    ├── ConfigError                   a config file or daemon option that cannot be used
    └── SnapshotError                 a snapshot request the snapshotter refuses (gRPC status below)
        ├── SnapshotNotFoundError     NOT_FOUND
        ├── SnapshotExistsError       ALREADY_EXISTS
        ├── SnapshotStateError        FAILED_PRECONDITION (commit of a non-active, remove with children)
        └── SnapshotArgumentError     INVALID_ARGUMENT (bad labels, parent not committed, bad filter)
"""

from __future__ import annotations


class SocikitError(Exception):
    """Base class of every error socikit raises on purpose."""


class FormatError(SocikitError):
    """Bytes that do not parse as the format they claim to be."""


class ZtocFormatError(FormatError):
    """A ztoc flatbuffer or a zinfo checkpoint blob that cannot be decoded."""


class TarFormatError(FormatError):
    """A tar stream that Go's archive/tar (the reference's reader) would reject."""


class LayerError(SocikitError):
    """A layer blob that cannot be indexed."""


class CompressedDataError(LayerError):
    """Corrupt or truncated compressed data (deflate error, CRC/ISIZE mismatch, early end)."""


class SpanDigestError(CompressedDataError):
    """The compressed bytes fetched for a span do not hash to the span's digest in the ztoc
    (a wrong or changed blob, or a bad range read). The message names the span and both digests;
    `span_id`, `expected` and `actual` carry them for callers that retry or report."""

    def __init__(self, message: str, *, span_id: int = -1, expected: str = "", actual: str = "") -> None:
        super().__init__(message)
        self.span_id = span_id
        self.expected = expected
        self.actual = actual


class DigestMismatchError(LayerError):
    """A blob whose sha256 differs from the digest it was expected to have."""


class UnsupportedLayerError(LayerError):
    """A layer the ztoc format cannot describe; it is left unindexed with this reason."""


class FileNotInZtocError(SocikitError):
    """The requested path has no entry in the ztoc's TOC."""


class ImageError(SocikitError):
    """An image that cannot be read or written: missing blob, bad manifest, unknown platform."""


class ImageReferenceError(ImageError):
    """An image reference string that does not parse."""


class UnreadableInputError(ImageError):
    """A file of the input is there but cannot be read (permission denied, an I/O error). It says
    nothing about the image, so `validate` reports it as an error instead of a failed check."""


class RegistryError(SocikitError):
    """A registry request failed."""


class AuthError(RegistryError):
    """The registry refused our credentials (or asked for some we do not have)."""


class RegistryStatusError(RegistryError):
    """A registry answered with an unexpected HTTP status: `status`, and `code` when the body is
    an OCI error (e.g. "NAME_UNKNOWN"), else ""."""

    def __init__(self, message: str, status: int, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code

    def __reduce__(self) -> tuple[type[RegistryStatusError], tuple[str, int, str]]:
        # Blob reads run in worker processes: the error must cross a pickle intact.
        return (type(self), (str(self), self.status, self.code))


class BlobNotFoundError(RegistryStatusError):
    """The registry has no such blob or manifest: it answered 404 (or BLOB_UNKNOWN /
    MANIFEST_UNKNOWN) for a blob or manifest request. A gRPC service maps it to NOT_FOUND."""


class ContainerdError(SocikitError):
    """A gRPC call to containerd or a snapshotter daemon failed. `code` is the gRPC status name
    ("NOT_FOUND", "ALREADY_EXISTS", "UNAVAILABLE", ...; "" when the failure was not a status)."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class InvalidArtifactError(SocikitError):
    """An artifact failed validation."""


class ConfigError(SocikitError):
    """A config file or daemon option that cannot be used (unknown key, wrong type, bad value)."""


class SnapshotError(SocikitError):
    """A snapshot request the snapshotter refuses; the gRPC service answers with a status code."""


class SnapshotNotFoundError(SnapshotError):
    """No snapshot has that key (gRPC NOT_FOUND)."""


class SnapshotExistsError(SnapshotError):
    """A snapshot with that key already exists (gRPC ALREADY_EXISTS); also the remote-snapshot answer."""


class SnapshotStateError(SnapshotError):
    """The snapshot is in the wrong state for the request (gRPC FAILED_PRECONDITION)."""


class SnapshotArgumentError(SnapshotError):
    """The request itself is malformed (gRPC INVALID_ARGUMENT)."""
