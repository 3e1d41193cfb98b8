"""Building the ztoc of a layer of many small files grows peak memory by well under 1 KiB per
file (issue 12): the TOC is held compactly and serialized into one buffer of its final size. The
child process reports its own VmHWM (a forked child's rusage would count the parent's memory)."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

from tests.vectors import REPO_ROOT

FILES = 60_000

_CHILD = """
import json, sys
from socikit.ztoc.builder import build_ztoc
from socikit.ztoc.serialize import dumps

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024

before = status("VmRSS")
with open(sys.argv[1], "rb") as blob:
    result = build_ztoc(blob, build_tool_identifier="memory-test")
data = dumps(result.ztoc)
print(json.dumps({"before": before, "peak": status("VmHWM"), "entries": len(result.ztoc.toc), "ztoc": len(data)}))
"""


def _small_files_layer(path: Path) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for i in range(FILES):
            info = tarfile.TarInfo(f"app/node_modules/pkg-{i // 40:05d}/lib/file-{i}.js")
            info.mtime = 1700000000.25  # a PAX mtime record for every file, as BuildKit writes
            data = b"module.exports = %d;\n" % i
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(gzip.compress(raw.getvalue(), compresslevel=1, mtime=0))


def test_peak_memory_grows_by_well_under_a_kib_per_file(tmp_path: Path) -> None:
    blob = tmp_path / "small-files.tar.gz"
    _small_files_layer(blob)
    out = subprocess.run([sys.executable, "-c", _CHILD, str(blob)], cwd=REPO_ROOT, capture_output=True, text=True,
                         check=True, timeout=300)  # fmt: skip
    report = json.loads(out.stdout)
    assert report["entries"] == FILES
    per_file = (report["peak"] - report["before"]) / FILES
    # The ztoc itself is ~250 bytes per file here; the store, its slack and the writer's
    # scratch add about as much again.
    assert report["ztoc"] / FILES > 200
    assert per_file < 1024, report
