#!/usr/bin/env bash
# Builds everything and runs every test:
#   1. the engine's NUnit suite on the default kernel path (with AVX-512 GEMM tiles where the CPU has them), then again
#      in child processes with DOTNET_EnableAVX512=0 (AVX2 only), DOTNET_EnableAVX2=0 (scalar fallback) and
#      DOTNET_EnableHWIntrinsic=0 (no intrinsics at all);
#   2. the hpcnn command end to end (NUnit, runs the built command as a process); ONNX export/import against ONNX Runtime;
#   3. libhpcnn.so (NativeAOT) from C and Python: build/test-native.sh (also the installed C prefix with CMake and
#      pkg-config, and the Python tests against the wheel installed into a venv);
#   4. the HpCnn NuGet package: build/test-nuget.sh (packs it, a sample project restores it and trains).
source "$(dirname "$0")/common.sh"
cd "$ROOT"
need_dotnet
need_dataset
start=$SECONDS

step "build (Release)"
dotnet build HpCnn.sln -c Release -nologo -v q || die "the build failed"

run_suite() {
    local project="$1" label="$2"; shift 2
    step "$label"
    env "$@" dotnet test "$project" -c Release --no-build -nologo --logger "console;verbosity=minimal" ||
        die "tests failed: $label"
}
run_suite tests/HpCnn.Tests/HpCnn.Tests.csproj "engine tests: default kernel path"
run_suite tests/HpCnn.Tests/HpCnn.Tests.csproj "engine tests: DOTNET_EnableAVX512=0 (AVX2 GEMM tiles, no AVX-512)" DOTNET_EnableAVX512=0
run_suite tests/HpCnn.Tests/HpCnn.Tests.csproj "engine tests: DOTNET_EnableAVX2=0 (scalar fallback)" DOTNET_EnableAVX2=0
run_suite tests/HpCnn.Tests/HpCnn.Tests.csproj "engine tests: DOTNET_EnableHWIntrinsic=0 (no intrinsics)" DOTNET_EnableHWIntrinsic=0
run_suite tests/HpCnn.Cli.Tests/HpCnn.Cli.Tests.csproj "hpcnn command end to end"
run_suite tests/HpCnn.Onnx.Tests/HpCnn.Onnx.Tests.csproj "ONNX export and import (against ONNX Runtime)"

"$ROOT/build/test-native.sh"
"$ROOT/build/test-nuget.sh"

echo
echo "all tests passed ($(( SECONDS - start )) s)"
