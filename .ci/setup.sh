#!/usr/bin/env bash
# Install what mrun and its tests need on a Debian 12 machine, then mrun itself into .venv.
# Shared by examples/quickstart.sh (the README's first command) and .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(python3 python3-venv python3-pip busybox-static runc containerd umoci skopeo
          libseccomp2 iproute2 procps
          gcc libc6-dev  # the native launchers (bin/launcher.c)
          clang lld wasi-libc libclang-rt-14-dev-wasm32  # these four build examples/wasm
          podman conmon
          docker-registry openssl  # the pull tests run a registry and its token server
          nftables  # bridge networks: masquerade and published ports
          strace  # holds a command at one system call (a signal sent in that window)
          containernetworking-plugins)  # the CRI tests' pod network (bridge, host-local, loopback)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The interpreter: python3.11+, by default Debian's own (installed above), not whichever python3
# comes first in PATH. Every mrun call the warm template does not serve is interpreter-bound, and
# Debian's build (optimised, libpython linked in) starts and imports ~20% faster here than a
# default source build such as pyenv's (--enable-shared, no PGO/LTO): 16 vs 20 ms for `-c pass`,
# 35 vs 45 ms for what `create` imports. PYTHON=... picks another.
PY=${PYTHON:-/usr/bin/python3}
"$PY" -c 'import sys; assert sys.version_info >= (3, 11), sys.version' \
  || { echo "mrun needs Python 3.11 or newer" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
# A regular (not editable) install: it is what users get, and editable installs add an
# import hook that costs ~25 ms on every mrun call.
.venv/bin/python -m pip install -q --disable-pip-version-check '.[test]'
