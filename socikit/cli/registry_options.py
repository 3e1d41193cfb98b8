"""Registry flags shared by every command that can talk to a registry (skopeo/soci spelling)."""

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from socikit.registry.options import RegistryOptions

PlainHttp = Annotated[bool, typer.Option("--plain-http", help="Talk HTTP, not HTTPS, to registries.")]
TlsVerify = Annotated[
    str, typer.Option("--tls-verify", help="Verify registry TLS certificates: true or false.", metavar="BOOL")
]
CertDir = Annotated[
    Path | None,
    typer.Option("--cert-dir", help="Directory with ca.crt / *.crt (and client.cert, client.key) for registries."),
]
User = Annotated[
    str | None,
    typer.Option("--user", "-u", help="Registry credentials USER[:PASSWORD]; prompts for the password if omitted."),
]


def registry_options(plain_http: bool, tls_verify: str, cert_dir: Path | None, user: str | None) -> "RegistryOptions":
    """Build RegistryOptions from the flags, prompting (hidden input) for a missing password;
    without a terminal to prompt on, a missing password is an AuthError."""
    from socikit.registry.options import RegistryOptions  # deferred: the registry stack is slow to import

    verify = tls_verify.strip().lower()
    if verify not in ("true", "false", "1", "0", "yes", "no"):
        raise typer.BadParameter("--tls-verify takes true or false")
    username = password = None
    if user:
        username, sep, password = user.partition(":")
        if not sep:
            if not sys.stdin.isatty():
                # typer's prompt would read EOF and print a bare "Aborted!".
                from socikit.errors import AuthError

                raise AuthError(f"no password for --user {username} and no terminal to ask for it: "
                                "give --user USER:PASSWORD, or leave out --user to use the Docker config")
            # The prompt goes to stderr: stdout is the command's output (`--json` must stay JSON).
            password = typer.prompt(f"Password for {username}", hide_input=True, err=True)
    return RegistryOptions(
        plain_http=plain_http,
        tls_verify=verify in ("true", "1", "yes"),
        cert_dir=str(cert_dir) if cert_dir else None,
        user=username,
        password=password,
    )
