"""`Page`: one answer of a paginated registry listing (tags, referrers), as the client hands it
to the modules layered over it. Kept apart from `client` so those modules need not import the
HTTP stack or the client to name it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing: HTTP status, response headers (case-insensitive lookups) and the
    whole body. Pages after the first always have status 200."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def media_type(self) -> str:
        """The `Content-Type` without parameters (`application/json; charset=utf-8` → `application/json`)."""
        return self.headers.get("Content-Type", "").split(";", 1)[0].strip()


__all__ = ["Page"]
