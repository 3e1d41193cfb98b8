#!/usr/bin/env bash
# Quick start: build a sample image from real files on this machine (three gzip layers, one above the
# default 10 MiB minimum layer size), convert it to a SOCI v2 image, and show what was made.
set -euo pipefail
cd "$(dirname "$0")/.."
work="${SOCIKIT_QUICKSTART_DIR:-/tmp/socikit-quickstart}"
rm -rf "$work"
python3 scripts/make_sample_image.py "$work/sample"
socikit convert "oci:$work/sample:latest" "oci:$work/sample-soci:latest" --progress plain
echo
echo "SOCI indexes now bundled with the image in $work/sample-soci:"
python3 - "$work/sample-soci" <<'PY'
import json, sys
from pathlib import Path
layout = Path(sys.argv[1])
index = json.loads((layout / "index.json").read_text())
root = json.loads((layout / "blobs/sha256" / index["manifests"][0]["digest"][7:]).read_text())
for m in root["manifests"]:
    kind = m.get("artifactType", m["mediaType"])
    print(f"  {m['digest']}  {kind}")
PY
