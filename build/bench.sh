#!/usr/bin/env bash
# The side-by-side runs, from a fresh machine: installs PyTorch 1.13 (Debian python3-torch), NumPy/SciPy, OpenBLAS,
# ONNX and the dataset, builds the benchmarks (and libhpcnn when it is missing or older than the sources), then runs
#   benchmarks/side_by_side.py  the reference network, conv layers A-C, sgemm against OpenBLAS, the seed tutorial loop
#   benchmarks/zoo.py           the network zoo (benchmarks/zoo/*.json) against its PyTorch twins and ONNX Runtime,
#                               and every convolution of the zoo alone
#   benchmarks/distributed.py   the reference network's epoch in 1 process x 2 threads and under mpirun in 2 processes
#                               x 1 thread (Open MPI), alternated, with the compute and communication time per step
# and prints the ratios with their targets.
#   ./build/bench.sh [--quick] [--threads 1,2]     both (--quick: a short run of each, about 3 minutes apiece)
#   ./build/bench.sh --zoo [--nets a,b] [--no-ort] [--no-conv]   the zoo alone; --no-zoo: side_by_side.py alone
#   ./build/bench.sh --distributed [--quick] [--rounds N]   distributed.py alone (about 2 minutes; --no-distributed skips it)
#   ./build/bench.sh --json out.json               raw figures: out.json (side_by_side.py) and out.zoo.json (zoo.py)
#   --repeat N goes to side_by_side.py.
# BenchmarkDotNet suites: dotnet run -c Release --project benchmarks/HpCnn.Benchmarks -- --filter '*Sgemm1T*'
source "$(dirname "$0")/common.sh"
cd "$ROOT"
need_dotnet
need_dataset
apt_install python3-numpy python3-scipy python3-torch python3-onnx libopenblas0

run_side=1 run_zoo=1 run_dist=1 json=""
common=() side=() zoo=() dist=()
while [ $# -gt 0 ]; do
    case "$1" in
        --zoo) run_side=0 run_dist=0 ;;
        --distributed) run_side=0 run_zoo=0 ;;
        --no-distributed) run_dist=0 ;;
        --rounds) dist+=("$1" "$2"); shift ;;
        --no-zoo) run_zoo=0 ;;
        --quick) common+=("$1") ;;
        --threads) common+=("$1" "$2"); shift ;;
        --json) json="$2"; shift ;;
        --repeat) side+=("$1" "$2"); shift ;;
        --nets) zoo+=("$1" "$2"); shift ;;
        --no-ort|--no-conv) zoo+=("$1") ;;
        *) die "unknown argument '$1' (see the comment at the top of build/bench.sh)" ;;
    esac
    shift
done

if [ "$run_zoo" = 1 ]; then
    # zoo.py runs HpCnn through its Python package: the NativeAOT library, rebuilt when a source is newer.
    lib="$ROOT/artifacts/native/libhpcnn.so"
    # (bin/ and obj/ hold generated sources that every build rewrites: they do not count.)
    if [ ! -f "$lib" ] || [ -n "$(find "$ROOT/src" "$ROOT/native-exports" \( -name bin -o -name obj \) -prune -o \
            \( -name '*.cs' -o -name '*.csproj' \) -newer "$lib" -print -quit)" ]; then
        "$ROOT/build/publish-native.sh"
    fi
fi
if [ "$run_side" = 1 ]; then
    step "benchmarks/side_by_side.py"
    "$PY" "$ROOT/benchmarks/side_by_side.py" ${common[@]+"${common[@]}"} ${side[@]+"${side[@]}"} ${json:+--json "$json"}
fi
if [ "$run_zoo" = 1 ]; then
    step "benchmarks/zoo.py"
    "$PY" "$ROOT/benchmarks/zoo.py" ${common[@]+"${common[@]}"} ${zoo[@]+"${zoo[@]}"} ${json:+--json "${json%.json}.zoo.json"}
fi
if [ "$run_dist" = 1 ]; then
    need_mpi
    build_cli
    step "benchmarks/distributed.py"
    quick=()
    for a in ${common[@]+"${common[@]}"}; do [ "$a" = --quick ] && quick=(--quick); done
    MPIRUN="${MPIRUN_LOCAL[*]}" "$PY" "$ROOT/benchmarks/distributed.py" ${quick[@]+"${quick[@]}"} ${dist[@]+"${dist[@]}"} \
        ${json:+--json "${json%.json}.distributed.json"}
fi
