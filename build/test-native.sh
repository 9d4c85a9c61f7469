#!/usr/bin/env bash
# Tests libhpcnn.so from C and Python as users get it: publishes the library if it is missing or older than its
# sources, builds the C examples and tests (gcc -Wall -Wextra -Werror, native-exports/Makefile), runs the C tests,
# runs test_distributed under mpirun with 2 and 4 processes, runs both examples (filters; train_reference for one epoch of the reference network, ~1-2 minutes), installs the
# library into a prefix (build/install.sh) and builds a program against it with CMake (find_package) and with
# pkg-config, builds the Python wheel (build/python-wheel.sh), installs it into a fresh venv and runs the pytest suite
# of the hpcnn package against that installed copy.
#   HPCNN_REFERENCE_EPOCHS=n   epochs for train_reference (default 1; 0 skips it)
source "$(dirname "$0")/common.sh"
cd "$ROOT"
need_dotnet
apt_install gcc make cmake pkg-config python3-numpy python3-pytest python3-venv python3-pip python3-setuptools python3-wheel python3-pil
# ONNX tests: onnx.checker on exports, PyTorch's exports imported (python3-torch is PyTorch 1.13).
apt_install python3-onnx python3-torch
# Distributed training: test_distributed (C) and test_distributed.py (Python) launch ranks with mpirun.
apt_install openmpi-bin libopenmpi-dev
need_dataset
ensure_native

step "build the C examples and tests"
make -C native-exports --no-print-directory all || die "building the C examples and tests failed"

step "C tests"
make -C native-exports --no-print-directory test || die "a C test failed"

# Root in containers, more ranks than cores, shared memory only (no probing of network interfaces), ranks not pinned
# (the library pins its own threads).
mpirun_here() { mpirun --allow-run-as-root --oversubscribe --bind-to none --mca btl self,vader "$@"; }
for ranks in 2 4; do
    step "C test under mpirun -np $ranks: a distributed fit has the weights of one process"
    mpirun_here -np "$ranks" "$ROOT/artifacts/native/bin/test_distributed" || die "test_distributed failed under mpirun -np $ranks"
done

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

step "install the C library into a prefix; build a program against it with CMake and with pkg-config"
prefix="$tmp/prefix"
"$ROOT/build/install.sh" "$prefix" >"$tmp/install.txt" || { cat "$tmp/install.txt"; die "build/install.sh failed"; }
example="$ROOT/native-exports/examples/installed"
cmake -S "$example" -B "$tmp/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_FLAGS="-Wall -Wextra -Werror" >"$tmp/cmake.txt" 2>&1 && cmake --build "$tmp/cmake-build" >>"$tmp/cmake.txt" 2>&1 ||
    { cat "$tmp/cmake.txt"; die "building native-exports/examples/installed with CMake (find_package(hpcnn)) failed"; }
"$tmp/cmake-build/tiny_train" || die "tiny_train built with CMake failed"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
gcc -std=c11 -O2 -Wall -Wextra -Werror -o "$tmp/tiny_train_pc" "$example/tiny_train.c" $(pkg-config --cflags --libs hpcnn) \
    -Wl,-rpath,"$(pkg-config --variable=libdir hpcnn)" || die "building tiny_train with pkg-config failed"
"$tmp/tiny_train_pc" || die "tiny_train built with pkg-config failed"
unset PKG_CONFIG_PATH

step "Python: build the wheel, install it into a fresh venv"
"$ROOT/build/python-wheel.sh"
venv="$tmp/venv"
"$PY" -m venv --system-site-packages "$venv" || die "could not make a venv with $PY (python3-venv)"
"$venv/bin/pip" install -q --no-index "$ROOT"/artifacts/python/hpcnn-*.whl || die "pip could not install the wheel offline"
# The tests must import the installed copy, not native-exports/python: no PYTHONPATH, and not run from that folder.
installed="$(cd "$tmp" && env -u PYTHONPATH "$venv/bin/python" -c 'import os, hpcnn; print(os.path.dirname(hpcnn.__file__))')" ||
    die "import hpcnn failed in the venv"
case "$installed" in "$venv"/*) echo "hpcnn imported from $installed" ;; *) die "hpcnn was imported from $installed, not from the venv" ;; esac

step "Python tests (the installed hpcnn package)"
(cd "$tmp" && env -u PYTHONPATH "$venv/bin/python" -m pytest "$ROOT/native-exports/python/tests" -q -p no:cacheprovider) ||
    die "a Python test failed"
# On a CPU with AVX-512 the package loaded libhpcnn-avx512.so above; the AVX2 build gets the same tests.
if grep -qw avx512f /proc/cpuinfo; then
    step "Python tests (the installed hpcnn package) on the AVX2 build, libhpcnn.so"
    (cd "$tmp" && env -u PYTHONPATH HPCNN_LIBRARY="$installed/lib/libhpcnn.so" \
        "$venv/bin/python" -m pytest "$ROOT/native-exports/python/tests" -q -p no:cacheprovider) ||
        die "a Python test failed (libhpcnn.so)"
fi

echo
echo "all native tests passed"
