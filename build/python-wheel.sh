#!/usr/bin/env bash
# Builds the hpcnn Python wheel into artifacts/python/ (hpcnn-VERSION-py3-none-linux_x86_64.whl: the package and both
# library builds), offline, with Debian's pip, setuptools and wheel; publishes the libraries first when missing or
# older than their sources. Install it with:
#   /usr/bin/python3 -m venv --system-site-packages V && V/bin/pip install --no-index artifacts/python/hpcnn-*.whl
source "$(dirname "$0")/common.sh"
cd "$ROOT"
need_dotnet
apt_install python3-pip python3-setuptools python3-wheel python3-numpy
ensure_native

version="$(hpcnn_version)"
wheel_version="$(sed -n 's/^version = "\(.*\)"$/\1/p' native-exports/python/pyproject.toml)"
[ "$version" = "$wheel_version" ] ||
    die "native-exports/python/pyproject.toml has version '$wheel_version', src/HpCnn/HpCnn.csproj '$version': make them equal"

step "build the hpcnn wheel"
out="$ROOT/artifacts/python"
rm -rf "$out"
mkdir -p "$out"
# Built from a copy, so that setuptools' build/ and hpcnn.egg-info/ never land in the source folder.
src="$(mktemp -d)"
trap 'rm -rf "$src"' EXIT
cp -r native-exports/python/pyproject.toml native-exports/python/setup.py native-exports/python/README.md \
    native-exports/python/hpcnn "$src/"
find "$src" -name __pycache__ -prune -exec rm -rf {} +
HPCNN_NATIVE_DIR="$ROOT/artifacts/native" "$PY" -m pip wheel --no-build-isolation --no-index --no-deps -q -w "$out" "$src" ||
    die "building the wheel failed"
wheel="$(ls "$out"/hpcnn-*.whl)"
echo "wheel: $wheel"
