#!/usr/bin/env bash
# Publishes libhpcnn.so (NativeAOT, x86-64-v3) and libhpcnn-avx512.so (x86-64-v3 + AVX-512) to artifacts/native/. The header is native-exports/include/hpcnn.h.
source "$(dirname "$0")/common.sh"
cd "$ROOT"
need_dotnet
# NativeAOT links with the platform toolchain.
command -v clang >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 || apt_install gcc
apt_install zlib1g-dev
out="$ROOT/artifacts/native"
mkdir -p "$out"
# Two builds of the same sources. NativeAOT fixes the instruction sets at compile time (AVX-512 cannot be chosen at
# run time from an x86-64-v3 build), so the AVX-512 tiles need a build of their own: libhpcnn-avx512.so (x86-64-v3 plus
# AVX-512 F/BW/CD/DQ/VL, refuses to load on CPUs without them). The Python package loads it where the CPU has them;
# C programs link libhpcnn.so and may load the other one themselves. The AVX-512 build goes first, so the last
# intermediate build is the default one.
step "publish libhpcnn-avx512.so (NativeAOT, x86-64-v3 + AVX-512)"
dotnet publish native-exports/HpCnn.Native.csproj -c Release -o "$out/publish-avx512" -nologo -v q -p:HpCnnAvx512=true
cp "$out/publish-avx512/libhpcnn.so" "$out/libhpcnn-avx512.so"
step "publish libhpcnn.so (NativeAOT, x86-64-v3)"
dotnet publish native-exports/HpCnn.Native.csproj -c Release -o "$out/publish" -nologo -v q
cp "$out/publish/libhpcnn.so" "$out/libhpcnn.so"
echo "library: $out/libhpcnn.so (AVX2), $out/libhpcnn-avx512.so (AVX-512)"
echo "header:  $ROOT/native-exports/include/hpcnn.h"
