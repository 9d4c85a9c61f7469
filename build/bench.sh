#!/usr/bin/env bash
# The "Speed" issue's side-by-side run, from a fresh machine: installs PyTorch 1.13 (Debian python3-torch),
# NumPy/SciPy, OpenBLAS and the dataset, builds the benchmarks, then runs benchmarks/side_by_side.py
# (HpCnn against PyTorch and OpenBLAS, alternated in one run) and prints the ratios with their targets.
# Arguments go to side_by_side.py: e.g. ./build/bench.sh --quick, ./build/bench.sh --json out.json.
# BenchmarkDotNet suites: dotnet run -c Release --project benchmarks/HpCnn.Benchmarks -- --filter '*Sgemm1T*'
source "$(dirname "$0")/common.sh"
cd "$ROOT"
need_dotnet
need_dataset
apt_install python3-numpy python3-scipy python3-torch libopenblas0
exec "$PY" "$ROOT/benchmarks/side_by_side.py" "$@"
