"""How to reach a registry: kept free of heavy imports so the CLI can build it without loading
the HTTP stack."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class RegistryOptions:
    """How to reach and authenticate to a registry. `user` may be `user:password`; no password
    ever shows in `repr`."""

    plain_http: bool = False
    tls_verify: bool = True
    cert_dir: str | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    docker_config: str | os.PathLike[str] | None = None

    def __repr__(self) -> str:
        user = self.user
        if user is not None and ":" in user:
            user = user.split(":", 1)[0] + ":<redacted>"
        return (f"RegistryOptions(plain_http={self.plain_http!r}, tls_verify={self.tls_verify!r}, "
                f"cert_dir={self.cert_dir!r}, user={user!r}, docker_config={self.docker_config!r})")
