"""The containerized builder's entrypoint: `IMAGE [DEST]` plus environment → `socikit convert`.

Indexes the registry image IMAGE and pushes the result: in place by default (SOCI v2 retags IMAGE
to the converted index; v1 pushes the SOCI indexes as referrers of IMAGE), or to DEST. Settings
come from the environment, spelled as the sample SOCI index builders spell them:

    MIN_LAYER_SIZE      MiB; smaller layers get no ztoc (default 10)
    SPAN_SIZE           bytes of uncompressed data per span (default 4194304)
    IMAGE_ARCH          a platform (linux/arm64), several (comma-separated) or `all`
                        (default: the image's only platform, else the host's)
    SOCI_INDEX_VERSION  v2 (default) or v1
    PLAIN_HTTP          true for registries without TLS
    DOCKER_CONFIG       directory holding the mounted config.json with registry credentials

`python3 -m socikit.cli.container IMAGE [DEST]`; the mapping is a pure function.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

from socikit.errors import ImageError

USAGE = "usage: socikit-builder IMAGE [DEST]  (IMAGE and DEST are registry references, HOST/REPO:TAG)"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")
MIB = 1 << 20


def _non_negative_int(name: str, value: str) -> int:
    text = value.strip()
    if not text.isdigit():
        raise ImageError(f"{name}={value!r}: expected a whole number")
    return int(text)


def convert_argv(args: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """The `socikit` command line (without the program name) for the builder's arguments and
    environment. Raises ImageError with a one-line reason for bad input."""
    if not 1 <= len(args) <= 2 or any(not a or a.startswith("-") for a in args):
        raise ImageError(USAGE)
    image = args[0]
    destination = args[1] if len(args) == 2 else image
    argv = ["convert", "--progress", "plain"]
    version = env.get("SOCI_INDEX_VERSION", "v2").strip().lower() or "v2"
    if version not in ("v1", "v2"):
        raise ImageError(f"SOCI_INDEX_VERSION={env['SOCI_INDEX_VERSION']!r}: expected v2 or v1")
    argv.append(f"--{version}")
    if env.get("MIN_LAYER_SIZE", "").strip():
        argv += ["--min-layer-size", str(_non_negative_int("MIN_LAYER_SIZE", env["MIN_LAYER_SIZE"]) * MIB)]
    if env.get("SPAN_SIZE", "").strip():
        argv += ["--span-size", str(_non_negative_int("SPAN_SIZE", env["SPAN_SIZE"]))]
    arch = env.get("IMAGE_ARCH", "").strip()
    if arch.lower() == "all":
        argv.append("--all-platforms")
    elif arch:
        for platform in arch.split(","):
            if platform.strip():
                argv += ["--platform", platform.strip()]
    plain = env.get("PLAIN_HTTP", "").strip().lower()
    if plain not in _TRUE + _FALSE:
        raise ImageError(f"PLAIN_HTTP={env['PLAIN_HTTP']!r}: expected true or false")
    if plain in _TRUE:
        argv += ["--plain-http"]
    return [*argv, image, destination]


def main(args: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run the conversion; the exit status of `socikit convert` (1 with one line on stderr for bad
    arguments or settings)."""
    args = list(sys.argv[1:] if args is None else args)
    env = os.environ if env is None else env
    try:
        argv = convert_argv(args, env)
    except ImageError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    from socikit.cli import app  # convert itself prints the AWS Lambda note after a v2 result

    try:
        app(args=argv, prog_name="socikit", standalone_mode=True)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return code


if __name__ == "__main__":
    sys.exit(main())
