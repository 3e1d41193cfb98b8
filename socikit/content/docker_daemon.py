"""`docker-daemon:REF`: an image in the Docker Engine's store, exported with python-on-whales
(`docker image save`) and read as a docker-archive.

Why a temporary file and not a stream: in `docker save` output, manifest.json (which says which
members are the config and the layers, in which order) comes after the layers, and the pipeline
reads layers in parallel, possibly from worker processes, so it needs random access. The export
is therefore written by the docker CLI straight into a temporary file (`--output`, so no image
bytes pass through Python's memory), which `close()` deletes. Every other source streams.
python-on-whales (and the docker CLI it drives) is needed only by this module.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from socikit.content.archive import DockerArchiveSource
from socikit.content.base import Closing
from socikit.content.reference import ImageReference
from socikit.errors import ImageError
from socikit.oci.descriptor import Descriptor

_UNREACHABLE_HINTS = (
    "cannot connect to the docker daemon",
    "is the docker daemon running",
    "connection refused",
    "no such file or directory",
    "permission denied",
    "error during connect",
)


def _last_line(text: bytes | str | None) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _daemon_error(reference: str, where: str, exc: Exception) -> ImageError:
    """One line that says whether the daemon was unreachable, the image missing, or else what."""
    from python_on_whales.exceptions import NoSuchImage

    detail = _last_line(getattr(exc, "stderr", None)) or _last_line(str(exc)) or type(exc).__name__
    lowered = detail.lower()
    if isinstance(exc, NoSuchImage) or "no such image" in lowered or "reference does not exist" in lowered:
        return ImageError(f"image {reference} is not in the Docker daemon's store ({where})")
    if any(hint in lowered for hint in _UNREACHABLE_HINTS):
        return ImageError(f"cannot reach the Docker daemon at {where}: {detail}")
    return ImageError(f"cannot export {reference} from the Docker daemon ({where}): {detail}")


class DockerDaemonSource(Closing):
    """An ImageSource over `docker save REF` of the daemon at `host` (default: $DOCKER_HOST, else
    the docker CLI's default). The export is spooled to a temporary file in `tmp_dir` (default: the
    system temp directory) and presented as a Docker schema2 manifest, like `docker-archive:`."""

    def __init__(self, reference: str | ImageReference, *, host: str | None = None,
                 tmp_dir: str | os.PathLike[str] | None = None) -> None:
        try:
            from python_on_whales import ClientNotFoundError, DockerClient
            from python_on_whales.exceptions import DockerException
        except ImportError:
            raise ImageError("docker-daemon: needs the python-on-whales package (pip install python-on-whales)") \
                from None

        self.reference = reference.docker_reference if isinstance(reference, ImageReference) else reference
        self.host = host or os.environ.get("DOCKER_HOST") or None
        where = self.host or "the default socket"
        fd, name = tempfile.mkstemp(prefix="socikit-docker-save-", suffix=".tar", dir=tmp_dir)
        os.close(fd)
        self._path = Path(name)
        try:
            try:
                docker = DockerClient(host=self.host)
                docker.image.save(self.reference, output=self._path)
            except ClientNotFoundError:
                raise ImageError("docker-daemon: the docker CLI is not installed (apt-get install docker.io)") \
                    from None
            except DockerException as exc:
                raise _daemon_error(self.reference, where, exc) from None
            except OSError as exc:
                raise ImageError(f"cannot export {self.reference} from the Docker daemon: {exc}") from None
            self._archive = DockerArchiveSource(self._path)
        except BaseException:
            self._remove()
            raise
        self.blob_opener = self._archive.blob_opener

    def __repr__(self) -> str:
        return f"DockerDaemonSource({self.reference!r})"

    def resolve(self) -> Descriptor:
        return self._archive.resolve()

    def read_blob(self, desc: Descriptor) -> bytes:
        return self._archive.read_blob(desc)

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        return self._archive.open_blob(desc)

    def has_blob(self, desc: Descriptor) -> bool:
        return self._archive.has_blob(desc)

    def _remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()

    def close(self) -> None:
        if hasattr(self, "_archive"):
            self._archive.close()
        self._remove()


__all__ = ["DockerDaemonSource"]
