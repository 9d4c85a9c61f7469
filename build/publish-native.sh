#!/usr/bin/env bash
# Publishes libhpcnn.so (NativeAOT, x86-64-v3) to artifacts/native/. The header is native-exports/include/hpcnn.h.
source "$(dirname "$0")/common.sh"
cd "$ROOT"
need_dotnet
# NativeAOT links with the platform toolchain.
command -v clang >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 || apt_install gcc
apt_install zlib1g-dev
out="$ROOT/artifacts/native"
mkdir -p "$out"
step "publish libhpcnn.so (NativeAOT)"
dotnet publish native-exports/HpCnn.Native.csproj -c Release -o "$out/publish" -nologo -v q
cp "$out/publish/libhpcnn.so" "$out/libhpcnn.so"
echo "library: $out/libhpcnn.so"
echo "header:  $ROOT/native-exports/include/hpcnn.h"
