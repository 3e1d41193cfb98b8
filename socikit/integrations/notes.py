"""Notes the build integrations print beside their results."""

from __future__ import annotations

# AWS Lambda starts container images from a single manifest or an image index of manifests; an
# index that also lists a SOCI v2 index (an artifact entry) is not something it accepts.
LAMBDA_NOTE = (
    "note: AWS Lambda cannot start a function from an image index that lists a SOCI v2 index; "
    "for Lambda targets use SOCI v1 (--soci v1, or --v1)"
)
