#!/usr/bin/env bash
# Builds everything and runs every test: the NUnit suite (AVX2 path, then the no-AVX2 and no-intrinsics
# fallbacks in child processes), the native library's C tests, and the Python tests.
source "$(dirname "$0")/common.sh"
cd "$ROOT"
need_dotnet
need_dataset

step "build (Release)"
dotnet build HpCnn.sln -c Release -nologo -v q

run_suite() {
    local label="$1"; shift
    step "NUnit suite: $label"
    env "$@" dotnet test tests/HpCnn.Tests/HpCnn.Tests.csproj -c Release --no-build -nologo \
        --logger "console;verbosity=minimal"
}
run_suite "default kernel path"
run_suite "DOTNET_EnableAVX2=0 (scalar fallback)" DOTNET_EnableAVX2=0
run_suite "DOTNET_EnableHWIntrinsic=0 (no intrinsics)" DOTNET_EnableHWIntrinsic=0

echo
echo "all tests passed"
