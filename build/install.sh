#!/usr/bin/env bash
# Installs HpCnn's C library under a prefix, publishing it first when missing or older than its sources:
#   PREFIX/lib/libhpcnn.so, PREFIX/lib/libhpcnn-avx512.so   the library (x86-64-v3) and its AVX-512 build
#   PREFIX/include/hpcnn.h
#   PREFIX/lib/pkgconfig/hpcnn.pc, hpcnn-avx512.pc          pkg-config --cflags --libs hpcnn
#   PREFIX/lib/cmake/hpcnn/hpcnnConfig.cmake (+ Version)    find_package(hpcnn): hpcnn::hpcnn, hpcnn::hpcnn_avx512
# Usage: ./build/install.sh PREFIX   (e.g. /usr/local, or $HOME/.local without root)
source "$(dirname "$0")/common.sh"
[ $# -eq 1 ] && [ -n "$1" ] || die "usage: ./build/install.sh PREFIX (e.g. /usr/local, or \$HOME/.local)"
mkdir -p "$1" || die "cannot create $1"
prefix="$(cd "$1" && pwd)"
cd "$ROOT"
need_dotnet
ensure_native

version="$(hpcnn_version)"
[ -n "$version" ] || die "no <Version> in src/HpCnn/HpCnn.csproj"
packaging="$ROOT/native-exports/packaging"
fill() { sed -e "s|@PREFIX@|$prefix|g" -e "s|@VERSION@|$version|g" -e "s|@VERSION_MAJOR@|${version%%.*}|g" "$1"; }

step "install HpCnn $version into $prefix"
install -d "$prefix/lib/pkgconfig" "$prefix/lib/cmake/hpcnn" "$prefix/include"
install -m 755 artifacts/native/libhpcnn.so artifacts/native/libhpcnn-avx512.so "$prefix/lib/"
install -m 644 native-exports/include/hpcnn.h "$prefix/include/"
fill "$packaging/hpcnn.pc.in" >"$prefix/lib/pkgconfig/hpcnn.pc"
fill "$packaging/hpcnn-avx512.pc.in" >"$prefix/lib/pkgconfig/hpcnn-avx512.pc"
install -m 644 "$packaging/hpcnnConfig.cmake" "$prefix/lib/cmake/hpcnn/"
fill "$packaging/hpcnnConfigVersion.cmake.in" >"$prefix/lib/cmake/hpcnn/hpcnnConfigVersion.cmake"
# A prefix the dynamic loader searches (/usr/local/lib) needs its cache refreshed to find the new library.
if [ "$(id -u)" -eq 0 ] && { [ "$prefix" = /usr/local ] || [ "$prefix" = /usr ]; }; then
    ldconfig
fi
(cd "$prefix" && find lib/libhpcnn*.so include/hpcnn.h lib/pkgconfig/hpcnn*.pc lib/cmake/hpcnn -type f | sort | sed 's/^/  /')
echo "build with: PKG_CONFIG_PATH=$prefix/lib/pkgconfig pkg-config --cflags --libs hpcnn"
echo "        or: find_package(hpcnn) with -DCMAKE_PREFIX_PATH=$prefix, target hpcnn::hpcnn"
