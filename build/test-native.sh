#!/usr/bin/env bash
# Tests libhpcnn.so from C and Python: publishes the library if it is missing or older than its sources,
# builds the C examples and tests (gcc -Wall -Wextra -Werror, native-exports/Makefile), runs the C tests,
# runs both examples (filters; train_reference for one epoch of the reference network, ~1-2 minutes),
# and runs the pytest suite of the hpcnn Python package.
#   HPCNN_REFERENCE_EPOCHS=n   epochs for train_reference (default 1; 0 skips it)
source "$(dirname "$0")/common.sh"
cd "$ROOT"
apt_install gcc make python3-numpy python3-pytest
# ONNX tests: onnx.checker on exports, PyTorch's exports imported (python3-torch is PyTorch 1.13).
apt_install python3-onnx python3-torch
need_dataset

lib="$ROOT/artifacts/native/libhpcnn.so"
if [ ! -f "$lib" ] || [ ! -f "$ROOT/artifacts/native/libhpcnn-avx512.so" ] || [ -n "$(find src/HpCnn src/HpCnn.Onnx native-exports/src native-exports/HpCnn.Native.csproj Directory.Build.props \
        \( -name '*.cs' -o -name '*.csproj' -o -name '*.props' \) -newer "$lib" -print -quit)" ]; then
    "$ROOT/build/publish-native.sh"
else
    echo "libhpcnn.so is newer than its sources: not publishing again"
fi

step "build the C examples and tests"
make -C native-exports --no-print-directory all || die "building the C examples and tests failed"

step "C tests"
make -C native-exports --no-print-directory test || die "a C test failed"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
bin="$ROOT/artifacts/native/bin"

step "example: filters"
"$bin/filters" 0 "$tmp" >"$tmp/filters.txt" || { cat "$tmp/filters.txt"; die "the filters example failed"; }
pgm_count=$(find "$tmp" -name '*.pgm' | wc -l)
[ "$pgm_count" -eq 10 ] || die "the filters example wrote $pgm_count PGM files, expected 10"
head -n 30 "$tmp/filters.txt"
echo "... ($(wc -l <"$tmp/filters.txt") lines, $pgm_count PGM files)"

epochs="${HPCNN_REFERENCE_EPOCHS:-1}"
if [ "$epochs" -gt 0 ]; then
    step "example: train_reference ($epochs epoch(s) of the reference network)"
    "$bin/train_reference" "$epochs" "$tmp/reference.hpcnn" || die "the train_reference example failed (exit $?)"
fi

step "Python tests (hpcnn package)"
PYTHONPATH="$ROOT/native-exports/python${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m pytest native-exports/python/tests -q -p no:cacheprovider ||
    die "a Python test failed"
# On a CPU with AVX-512 the package loaded libhpcnn-avx512.so above; the AVX2 build gets the same tests.
if grep -qw avx512f /proc/cpuinfo; then
    step "Python tests (hpcnn package) on the AVX2 build, libhpcnn.so"
    HPCNN_LIBRARY="$lib" PYTHONPATH="$ROOT/native-exports/python${PYTHONPATH:+:$PYTHONPATH}" \
        "$PY" -m pytest native-exports/python/tests -q -p no:cacheprovider || die "a Python test failed (libhpcnn.so)"
fi

echo
echo "all native tests passed"
