"""How to reach a registry: kept free of heavy imports so the CLI can build it without loading
the HTTP stack."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class RegistryOptions:
    """How to reach and authenticate to a registry. `password` never shows in `repr`."""

    plain_http: bool = False
    tls_verify: bool = True
    cert_dir: str | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    docker_config: str | os.PathLike[str] | None = None
