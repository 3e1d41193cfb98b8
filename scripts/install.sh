#!/usr/bin/env bash
# Installs everything socikit and its test suite need on a fresh Debian 12 machine (run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
# pigz/zstd: test layers; docker-registry, apache2-utils (htpasswd), skopeo, containerd+runc: the
# registry tests and the independent clients that read what we push; docker.io: the dockerd that
# the docker-daemon: source is tested against; gcc/libc6-dev: socikit's C extension is compiled
# by `pip install -e .`; fuse3/libfuse3-dev/pkg-config: pyfuse3 builds from source and the snapshotter
# mounts FUSE layers; podman/buildah: the additional layer store and its tests.
APT_PACKAGES=(gcc libc6-dev pigz zstd gzip tar openssl docker-registry apache2-utils skopeo containerd runc docker.io iptables fuse3 libfuse3-dev pkg-config podman buildah)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -e '.[test]'
