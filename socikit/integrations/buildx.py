"""Run `docker buildx build` for `socikit buildx build`, through python-on-whales.

The user's buildx arguments pass through untouched; socikit adds the names (`--tag`), a
`--metadata-file` (so it learns the digest of exactly what was built) and the output: `--push`,
or an OCI archive it then converts. Assembling the command line is a pure function; running it
streams buildx's own output to the terminal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from socikit.errors import ImageError

BUILDX_MISSING = (
    "docker buildx is not installed: install the buildx CLI plugin (Debian/Ubuntu: apt-get install "
    "docker-buildx; Docker's repositories: docker-buildx-plugin). Images built with plain `docker build` "
    "are converted from the engine with `socikit convert docker-daemon:IMAGE DST`"
)
DOCKER_MISSING = "the docker CLI is not installed (apt-get install docker.io, or Docker's docker-ce-cli)"

# Outputs socikit chooses itself: the user's would bypass the conversion or export nothing it can read.
_OWN_OUTPUT_FLAGS = ("--output", "-o", "--load")
_METADATA_FLAG = "--metadata-file"
# What a docker CLI without the plugin says (20.10: "'buildx' is not a docker command"; 23+:
# "unknown command: docker buildx").
_MISSING_HINTS = ("is not a docker command", "unknown command")


class BuildxMissingError(ImageError):
    """`docker buildx` is not available."""


@dataclass(frozen=True, slots=True)
class BuildxPlan:
    """The buildx invocation and where its results land."""

    argv: tuple[str, ...]  # after `docker`
    metadata_file: Path
    oci_archive: Path | None  # None when pushing


def _flag_name(arg: str) -> str:
    return arg.split("=", 1)[0] if arg.startswith("--") else arg[:2]


def user_metadata_file(user_args: Sequence[str]) -> Path | None:
    """The `--metadata-file` the user gave among the buildx arguments, if any (socikit reads that
    one rather than adding its own)."""
    found = None
    for i, arg in enumerate(user_args):
        if arg == "--":
            break
        if arg == _METADATA_FLAG and i + 1 < len(user_args):
            found = Path(user_args[i + 1])
        elif arg.startswith(_METADATA_FLAG + "="):
            found = Path(arg.split("=", 1)[1])
    return found


def check_user_args(user_args: Sequence[str]) -> None:
    """Refuse buildx flags that choose the output: socikit picks it (`--push`, else an OCI archive)."""
    for arg in user_args:
        if arg == "--":
            break
        if arg.startswith("-") and (_flag_name(arg) in _OWN_OUTPUT_FLAGS or arg.startswith("--output=")):
            raise ImageError(
                f"socikit buildx build chooses the build's output itself, so {_flag_name(arg)} cannot be "
                "given: use --push to push (then convert in place), or leave it out to convert an OCI "
                "archive into --destination"
            )


def plan_build(
    user_args: Sequence[str], *, tags: Sequence[str], push: bool, work_dir: Path
) -> BuildxPlan:
    """`buildx build` with socikit's flags first (so a `--` among the user's arguments cannot
    swallow them), then the user's arguments as given (pure)."""
    check_user_args(user_args)
    if not tags:
        raise ImageError("give the image a name with --tag (-t) HOST/REPO:TAG")
    given = user_metadata_file(user_args)
    metadata = given or work_dir / "buildx-metadata.json"
    argv: list[str] = ["buildx", "build"]
    for tag in tags:
        argv += ["--tag", tag]
    if given is None:
        argv += [_METADATA_FLAG, str(metadata)]
    archive = None
    if push:
        argv.append("--push")
    else:
        archive = work_dir / "build.oci.tar"
        argv += ["--output", f"type=oci,dest={archive}"]
    argv += list(user_args)
    return BuildxPlan(tuple(argv), metadata, archive)


def _docker_command(host: str | None) -> list[str]:
    from python_on_whales import ClientNotFoundError, DockerClient

    try:
        return [str(part) for part in DockerClient(host=host).client_config.docker_cmd]
    except ClientNotFoundError:
        raise ImageError(DOCKER_MISSING) from None


def ensure_buildx(*, host: str | None = None) -> str:
    """The `docker buildx version` line; BuildxMissingError when the plugin is absent."""
    from python_on_whales.exceptions import DockerException
    from python_on_whales.utils import run

    command = _docker_command(host)
    try:
        return str(run([*command, "buildx", "version"])).strip()
    except DockerException as exc:
        detail = f"{exc.stderr or ''} {exc.stdout or ''}".lower()
        if any(hint in detail for hint in _MISSING_HINTS):
            raise BuildxMissingError(BUILDX_MISSING) from None
        last = (exc.stderr or exc.stdout or "").strip().splitlines()
        raise ImageError(f"docker buildx does not work: {last[-1] if last else f'exit {exc.return_code}'}") from None
    except FileNotFoundError:
        raise ImageError(DOCKER_MISSING) from None


def run_build(plan: BuildxPlan, *, host: str | None = None) -> None:
    """Run the build, its output going straight to this process's stdout/stderr."""
    from python_on_whales.exceptions import DockerException
    from python_on_whales.utils import run

    command = _docker_command(host)
    try:
        run([*command, *plan.argv], capture_stdout=False, capture_stderr=False)
    except DockerException as exc:
        raise ImageError(f"docker buildx build failed (exit code {exc.return_code}); its output is above") from None


__all__ = [
    "BUILDX_MISSING",
    "BuildxMissingError",
    "BuildxPlan",
    "check_user_args",
    "ensure_buildx",
    "plan_build",
    "run_build",
    "user_metadata_file",
]
