#!/usr/bin/env python3
"""Benchmark pull-convert-push through a local registry against `skopeo copy` of the same image.

Starts two Debian docker-registry processes on 127.0.0.1 (own storage in temp dirs, stopped at
the end) so that every layer really travels (within one registry both tools would just mount
blobs), uploads the three-layer image of bench_convert.py to the first with skopeo, then times in
one run:
  - `socikit convert --no-cache SRC/src:1 DST/socikit-N:1 --plain-http` (pull, index, push)
  - `skopeo copy docker://SRC/src:1 docker://DST/skopeo-N:1` (pull and push only)
and prints the ratio socikit / skopeo.

    python3 scripts/bench_push.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_convert import image, timed  # noqa: E402
from benchenv import SOCIKIT, compile_socikit  # noqa: E402

REGISTRY_BIN = "/usr/bin/docker-registry"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_registry(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {root / 'storage'}\nhttp:\n  addr: 127.0.0.1:{port}\n"
    )
    proc = subprocess.Popen([REGISTRY_BIN, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
            return proc, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("docker-registry did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    src_layout = image()
    ours, theirs = [], []
    compile_socikit()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "src").mkdir()
        src_proc, src = start_registry(Path(tmp) / "src")
        try:
            subprocess.run(
                ["skopeo", "copy", "--dest-tls-verify=false", f"oci:{src_layout}:latest", f"docker://{src}/src:1"],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            for i in range(args.repeat):
                # A fresh destination registry per tool and round: nothing can be skipped or mounted.
                for tool, results in (("socikit", ours), ("skopeo", theirs)):
                    root = Path(tmp) / f"{tool}-{i}"
                    root.mkdir()
                    dst_proc, dst = start_registry(root)
                    try:
                        if tool == "socikit":
                            argv = [
                                *SOCIKIT,
                                "convert",
                                "--no-cache",
                                "--progress",
                                "none",
                                "--plain-http",
                                f"{src}/src:1",
                                f"{dst}/app:1",
                            ]
                        else:
                            argv = [
                                "skopeo",
                                "copy",
                                "--src-tls-verify=false",
                                "--dest-tls-verify=false",
                                f"docker://{src}/src:1",
                                f"docker://{dst}/app:1",
                            ]
                        results.append(timed(argv))
                    finally:
                        dst_proc.terminate()
                        dst_proc.wait(timeout=10)
        finally:
            src_proc.terminate()
            src_proc.wait(timeout=10)
    o, t = min(ours), min(theirs)
    print(
        f"image: {src_layout.name} (3 gzip layers), local docker-registry processes "
        f"(fresh destination each round), best of {args.repeat}"
    )
    print(f"  skopeo copy                   {t:6.2f} s")
    print(f"  socikit convert (pull+index+push) {o:6.2f} s   ratio socikit/skopeo {o / t:.2f}")


if __name__ == "__main__":
    main()
