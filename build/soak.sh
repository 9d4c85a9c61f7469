#!/usr/bin/env bash
# The long soak of issue 12 (not part of ./build/test.sh): THREADS threads (default 8) predict on one shared model
# through libhpcnn.so from Python for N minutes (default 10), every answer compared bit for bit with one computed alone,
# the resident memory sampled; fails on a different answer, a hung thread or memory growing after the warm-up.
# Usage: ./build/soak.sh [--minutes N] [--threads T] [--growth-mib M]
source "$(dirname "$0")/common.sh"
cd "$ROOT"
need_dotnet
apt_install python3-numpy
ensure_native >/dev/null
PYTHONPATH="$ROOT/native-exports/python" exec "$PY" "$ROOT/build/soak.py" "$@"
