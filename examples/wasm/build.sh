#!/bin/sh
# Build the example modules with Debian's toolchain:
#   apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32
set -eu
cd "$(dirname "$0")"
for src in hello files pod cat preopens grow; do
  clang --target=wasm32-wasi -O2 -Wl,--strip-all -o "$src.wasm" "$src.c"
done
ls -l ./*.wasm
