#!/usr/bin/env bash
# Coverage-guided fuzzing of every untrusted input HpCnn reads: SharpFuzz (NuGet 2.3.0) instruments HpCnn.dll and
# HpCnn.Onnx.dll, AFL++ (Debian afl++) drives tests/HpCnn.Fuzz, one target per format:
#   model  a model file (ModelFile.Read; a file that loads then predicts one image)
#   spec   a JSON network spec (NetworkSpec.Parse; then predicts one image)
#   idx    an IDX file, raw or gzip (Idx.Read)
#   onnx   an ONNX file (OnnxImport.FromBytes; then predicts one image)
#   png    an image file (ImageDecoding.Decode: PNG, JPEG, BMP, GIF; what `hpcnn predict` reads)
#   cifar  a CIFAR-10 batch file and batches.meta.txt (Cifar10.ReadBatch, ReadClassNames)
# Seeds: tests/HpCnn.Fuzz/corpus/TARGET (committed). Findings: artifacts/fuzz/out/TARGET/default/{crashes,hangs}; each
# is replayed at the end with its exception and stack. A finding becomes a regression test: a unit test in the suite
# of the reader, and the input under tests/HpCnn.Fuzz/regressions/TARGET/, which this script replays before fuzzing.
# Usage: ./build/fuzz.sh [--minutes N] [TARGET...]   (default: 1 minute for each of the six targets)
#   long run:  ./build/fuzz.sh --minutes 600 onnx    (AFL resumes from artifacts/fuzz/out/onnx when it exists;
#              FUZZ_FRESH=1 starts from the seeds again)
source "$(dirname "$0")/common.sh"
cd "$ROOT"
need_dotnet
apt_install afl++

minutes=1
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --minutes) [ $# -ge 2 ] || die "--minutes needs a number"; minutes="$2"; shift 2 ;;
        model|spec|idx|onnx|png|cifar) targets+=("$1"); shift ;;
        *) die "usage: ./build/fuzz.sh [--minutes N] [model|spec|idx|onnx|png|cifar ...]" ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=(model spec idx onnx png cifar)
[[ "$minutes" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "--minutes takes a number, got '$minutes'"
seconds=$(awk -v m="$minutes" 'BEGIN { s = int(m * 60); print (s < 10 ? 10 : s) }')

fuzz="$ROOT/artifacts/fuzz"
tools="$fuzz/tools"
bin="$fuzz/bin"
step "publish tests/HpCnn.Fuzz and instrument HpCnn.dll, HpCnn.Onnx.dll with SharpFuzz"
[ -x "$tools/sharpfuzz" ] || dotnet tool install SharpFuzz.CommandLine --version 2.3.0 --tool-path "$tools" >/dev/null ||
    die "could not install the sharpfuzz tool (NuGet SharpFuzz.CommandLine 2.3.0)"
rm -rf "$bin" "$fuzz/replay"
dotnet publish tests/HpCnn.Fuzz/HpCnn.Fuzz.csproj -c Release -o "$bin" -nologo -v q || die "publishing tests/HpCnn.Fuzz failed"
# Findings are replayed by an uninstrumented copy: instrumented code runs only inside SharpFuzz's loop.
cp -r "$bin" "$fuzz/replay"
for dll in HpCnn.dll HpCnn.Onnx.dll; do
    "$tools/sharpfuzz" "$bin/$dll" >/dev/null || die "sharpfuzz could not instrument $dll"
done

# AFL++ settings for a managed target: dotnet itself is not instrumented (SharpFuzz reports the coverage of the
# instrumented assemblies through AFL's shared memory), crashes are exceptions, not core dumps.
export AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_AFFINITY=1
export DOTNET_TieredPGO=0 HPCNN_PIN_THREADS=0

step "replay the regressions of earlier findings (tests/HpCnn.Fuzz/regressions)"
for t in "${targets[@]}"; do
    [ -d "tests/HpCnn.Fuzz/regressions/$t" ] || continue
    timeout 120 dotnet "$fuzz/replay/HpCnn.Fuzz.dll" "$t" "tests/HpCnn.Fuzz/regressions/$t" || die "a regression input of $t fails again"
done

summary=()
found=0
for t in "${targets[@]}"; do
    out="$fuzz/out/$t"
    input=(-i "$ROOT/tests/HpCnn.Fuzz/corpus/$t")
    if [ -d "$out/default/queue" ] && [ -z "${FUZZ_FRESH:-}" ]; then input=(-i -); else rm -rf "$out"; fi
    mkdir -p "$out"
    step "fuzz $t for $seconds s (afl-fuzz, output in $out)"
    # -t: a 2-second timeout per input (a hang); -m none: .NET reserves far more address space than AFL's default.
    afl-fuzz "${input[@]}" -o "$out" -t 2000 -m none -V "$seconds" -- dotnet "$bin/HpCnn.Fuzz.dll" "$t" >"$out/afl.log" 2>&1 ||
        { tail -n 30 "$out/afl.log"; die "afl-fuzz failed on $t (log: $out/afl.log)"; }
    stats="$out/default/fuzzer_stats"
    [ -f "$stats" ] || { tail -n 30 "$out/afl.log"; die "afl-fuzz wrote no statistics for $t"; }
    get() { sed -n "s/^$1 *: *//p" "$stats"; }
    execs=$(get execs_done); crashes=$(get saved_crashes); hangs=$(get saved_hangs); paths=$(get corpus_count)
    edges=$(get edges_found)
    summary+=("$(printf '%-6s %10s executions %6s corpus %6s edges %4s crashes %4s hangs' "$t" "$execs" "$paths" "$edges" "$crashes" "$hangs")")
    if [ "${crashes:-0}" -gt 0 ] || [ "${hangs:-0}" -gt 0 ]; then
        found=1
        step "$t: replaying the findings"
        for f in "$out"/default/crashes/id* "$out"/default/hangs/id*; do
            [ -f "$f" ] || continue
            echo "-- $f"
            timeout 20 dotnet "$fuzz/replay/HpCnn.Fuzz.dll" "$t" "$f" | head -n 12 || echo "(exit $?: a hang is a timeout)"
        done
    fi
done

step "fuzzing summary ($seconds s per target)"
printf '%s\n' "${summary[@]}"
[ "$found" -eq 0 ] || die "findings above: each one becomes a regression test (tests/HpCnn.Fuzz/regressions/TARGET/)"
