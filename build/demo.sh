#!/usr/bin/env bash
# The main job, from a fresh machine: train the reference network on Fashion-MNIST with live progress,
# evaluate it, draw what it learned, and predict one test image. Also publishes libhpcnn.so and builds the Python
# wheel, so that C (./build/install.sh PREFIX) and Python (pip install --no-index artifacts/python/hpcnn-*.whl in a
# venv) work afterwards.
# Options: EPOCHS=N (default 3), THREADS=N (default: all cores).
source "$(dirname "$0")/common.sh"
cd "$ROOT"
need_dotnet
need_dataset
apt_install python3-numpy

EPOCHS="${EPOCHS:-3}"
out="$ROOT/artifacts/demo"
mkdir -p "$out"
threads=()
[ -n "${THREADS:-}" ] && threads=(--threads "$THREADS")

step "build the hpcnn command"
build_cli
"$ROOT/build/publish-native.sh" >/dev/null
echo "libhpcnn: $ROOT/artifacts/native/libhpcnn.so (header: native-exports/include/hpcnn.h)"
"$ROOT/build/python-wheel.sh" | tail -n 1

step "train the reference network ($EPOCHS epochs, batch 64, SGD momentum 0.9)"
./build/hpcnn inspect --net reference
./build/hpcnn train --net reference --epochs "$EPOCHS" "${threads[@]}" \
    --out "$out/reference.hpcnn" --metrics-json "$out/metrics.json"

step "evaluate on the 10,000 test images"
./build/hpcnn eval "$out/reference.hpcnn" "${threads[@]}"

step "draw filters, feature maps and training curves"
./build/hpcnn visualize "$out/reference.hpcnn" --image-index 0 --out-dir "$out/pictures"

step "predict one test image"
./build/hpcnn predict "$out/reference.hpcnn" --idx /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz --index 0 --top 3

step "done"
echo "model:    $out/reference.hpcnn"
echo "metrics:  $out/metrics.json"
echo "pictures: $out/pictures"
