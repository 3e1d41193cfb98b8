"""`docker-daemon:REF`: an image in the Docker Engine's store, exported with python-on-whales
(`docker save`) and read as a docker-archive.

`docker save` produces a tar stream whose layers are only addressable by position, and the
docker-archive reader needs random access to hand layers to parallel workers; so this one source
spools the export to a temporary file (deleted on close) instead of streaming it. python-on-whales
is imported here only.
"""

from __future__ import annotations

import os
import tempfile
from typing import BinaryIO

from socikit.content.archive import DockerArchiveSource
from socikit.errors import ImageError
from socikit.oci.descriptor import Descriptor


class DockerDaemonSource:
    def __init__(self, reference: str, *, host: str | None = None) -> None:
        from python_on_whales import DockerClient
        from python_on_whales.exceptions import DockerException

        self.reference = reference
        docker = DockerClient(host=host or os.environ.get("DOCKER_HOST"))
        fd, self._path = tempfile.mkstemp(prefix="socikit-docker-save-", suffix=".tar")
        try:
            with os.fdopen(fd, "wb") as out:
                stream = docker.image.save(reference)
                assert stream is not None
                for chunk in stream:
                    out.write(chunk)
        except DockerException as exc:
            os.unlink(self._path)
            detail = (exc.stderr or str(exc)).strip().splitlines()
            raise ImageError(
                f"cannot export {reference} from the Docker daemon: {detail[-1] if detail else 'docker save failed'}"
            ) from None
        except BaseException:
            os.unlink(self._path)
            raise
        self._archive = DockerArchiveSource(self._path)
        self.blob_opener = self._archive.blob_opener

    def resolve(self) -> Descriptor:
        return self._archive.resolve()

    def read_blob(self, desc: Descriptor) -> bytes:
        return self._archive.read_blob(desc)

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        return self._archive.open_blob(desc)

    def close(self) -> None:
        self._archive.close()
        try:
            os.unlink(self._path)
        except FileNotFoundError:
            pass
