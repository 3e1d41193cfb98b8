"""Run the `socikit` command with its stdout and stderr on a pseudo-terminal of a given size, as a
user at a terminal sees it (rich output, terminal width), and read back what the terminal got."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

from tests.vectors import REPO_ROOT

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[()][0-9A-Za-z]")


def run_on_terminal(*args: str, root: Path | None = None, columns: int = 80,
                    cwd: Path | None = None) -> tuple[int, str]:
    """(exit code, what the terminal showed: escape sequences removed, `\\n` line ends)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "COLUMNS", "LINES")}
    env |= {"PYTHONPATH": path, "TERM": "xterm", "COLUMNS": str(columns)}
    argv = [sys.executable, "-m", "socikit", *args, *(["--root", str(root)] if root is not None else [])]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env, cwd=cwd)
    os.close(slave)
    received = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: every writer has closed the terminal
            break
        if not chunk:
            break
        received += chunk
    os.close(master)
    code = proc.wait(timeout=300)
    return code, _ANSI.sub("", received.decode("utf-8", "replace")).replace("\r\n", "\n")
