#!/usr/bin/env bash
# Builds everything and runs every test:
#   1. the engine's NUnit suite on the default kernel path (with AVX-512 GEMM tiles where the CPU has them), then again
#      in child processes with DOTNET_EnableAVX512=0 (AVX2 only), DOTNET_EnableAVX2=0 (scalar fallback) and
#      DOTNET_EnableHWIntrinsic=0 (no intrinsics at all);
#   2. the hpcnn command end to end (NUnit, runs the built command as a process); ONNX export/import against ONNX Runtime;
#   3. libhpcnn.so (NativeAOT) from C and Python: build/test-native.sh (also the installed C prefix with CMake and
#      pkg-config, and the Python tests against the wheel installed into a venv);
#   4. the HpCnn NuGet package: build/test-nuget.sh (packs it, a sample project restores it and trains);
#   5. distributed training: hpcnn train under mpirun (Open MPI) against one process, and a rank that fails.
#   ./build/test.sh --distributed   runs section 5 alone (after building the command).
source "$(dirname "$0")/common.sh"
cd "$ROOT"
need_dotnet
need_dataset
need_mpi
start=$SECONDS

# The same training (2,000 images, batch 64: 31 full batches and one of 16; validation on the test set) in one process
# with 2 threads and in 2 and 4 processes of 1 thread: the weights and optimizer state must be the same bits, and so
# must the figures. Then a rank that cannot find its data: every rank must end, mpirun non-zero, the error named.
test_distributed() {
    step "distributed training: 1 process vs mpirun -np 2 and -np 4"
    local dir train=(train --net reference --limit 2000 --epochs 1 --batch-size 64 --seed 7 -q)
    dir="$(mktemp -d)"
    dotnet "$HPCNN_CLI" "${train[@]}" --threads 2 --out "$dir/one.hpcnn" --metrics-json "$dir/one.json" >"$dir/one.log" 2>&1 ||
        { cat "$dir/one.log"; die "distributed: the one-process run failed"; }
    local n
    for n in 2 4; do
        mpirun_local -np "$n" dotnet "$HPCNN_CLI" "${train[@]}" --threads 1 --out "$dir/np$n.hpcnn" --metrics-json "$dir/np$n.json" \
            >"$dir/np$n.log" 2>&1 || { cat "$dir/np$n.log"; die "distributed: mpirun -np $n failed"; }
        cat "$dir/np$n.log"
        # rank 0 alone prints: one summary line, naming the ranks
        [ "$(grep -c '^after 1 epoch' "$dir/np$n.log")" = 1 ] || die "distributed: expected one summary line from mpirun -np $n (rank 0's), see above"
        grep -q "; $n ranks: 32 steps" "$dir/np$n.log" || die "distributed: the summary of mpirun -np $n does not say '$n ranks: 32 steps'"
        same_weights "$dir/one.hpcnn" "$dir/np$n.hpcnn" || die "distributed: mpirun -np $n trained other weights than one process"
        "$PY" - "$dir/one.json" "$dir/np$n.json" "$n" <<'PYEOF' || die "distributed: the metrics of mpirun -np $n differ from one process's"
import json, sys
one, many = (json.load(open(p)) for p in sys.argv[1:3])
keys = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
a, b = ([[e[k] for k in keys] for e in d["epochs"]] for d in (one, many))
# The training loss is a double sum over the batches' samples whose order depends on the split (the last digit may
# move); the rest must be the same bits.
same = lambda x, y, k: x == y or (k == "train_loss" and abs(x - y) <= 1e-12 * abs(x))
assert all(same(x, y, k) for ea, eb in zip(a, b) for x, y, k in zip(ea, eb, keys)) and len(a) == len(b), f"one process {a}, {sys.argv[3]} ranks {b}"
assert one["ranks"] == 1 and many["ranks"] == int(sys.argv[3]), (one["ranks"], many["ranks"])
assert many["communication_seconds"] > 0 and one["communication_seconds"] == 0
print(f"metrics equal: {dict(zip(keys, b[0]))}")
PYEOF
    done

    step "distributed training: rank 1 of 2 cannot find its data"
    local missing="$dir/no-such-data" t0=$SECONDS rc=0
    # (the output file names this run's processes, to check that none is left)
    timeout 60 "${MPIRUN_LOCAL[@]}" -np 2 sh -c 'if [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then d="$1"; else d=/usr/share/datasets/fashion-mnist; fi;
            shift; exec dotnet "$@" --data-dir "$d"' sh "$missing" "$HPCNN_CLI" "${train[@]}" --threads 1 --out "$dir/failing.hpcnn" \
        >"$dir/fail.log" 2>&1 || rc=$?
    cat "$dir/fail.log"
    [ "$rc" != 0 ] || die "distributed: mpirun exited 0 although rank 1 had no data"
    [ "$rc" != 124 ] || die "distributed: mpirun still ran after 60 s with rank 1 failed (hang)"
    grep -q "rank 1: error: --data-dir $missing does not exist" "$dir/fail.log" || die "distributed: rank 1's error does not name $missing"
    ! pgrep -f "$dir/failing.hpcnn" >/dev/null || die "distributed: a rank is still running after mpirun ended: $(pgrep -af "$dir/failing.hpcnn")"
    [ ! -e "$dir/failing.hpcnn" ] || die "distributed: the failed run wrote a model"
    echo "mpirun ended with exit code $rc after $(( SECONDS - t0 )) s, no rank left, rank 1's error named the missing folder"

    step "distributed training: ranks with different data"
    rc=0
    timeout 60 "${MPIRUN_LOCAL[@]}" -np 2 sh -c 'if [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then l=1000; else l=2000; fi; exec dotnet "$@" --limit $l' \
        sh "$HPCNN_CLI" train --net reference --epochs 1 --batch-size 64 -q --threads 1 >"$dir/differ.log" 2>&1 || rc=$?
    cat "$dir/differ.log"
    [ "$rc" != 0 ] && [ "$rc" != 124 ] || die "distributed: ranks with different --limit: mpirun exit code $rc (expected an error, within 60 s)"
    grep -q "different training or validation data" "$dir/differ.log" || die "distributed: ranks with different --limit did not say their data differ"

    # kill -9 of one rank mid-run (checkpoints every 4 batches; a sleep after each batch lets the kill land mid-epoch):
    # mpirun must end, and a resume under mpirun must give the uninterrupted run's weights.
    step "distributed training: kill -9 of rank 1, then --resume"
    ( r=0; HPCNN_TEST_BATCH_DELAY_MS=100 timeout 60 "${MPIRUN_LOCAL[@]}" -np 2 sh -c 'echo $$ >"$1/rank$OMPI_COMM_WORLD_RANK.pid"; shift; exec dotnet "$@"' \
        sh "$dir" "$HPCNN_CLI" "${train[@]}" --threads 1 --out "$dir/killed.hpcnn" --checkpoint-dir "$dir/ck" --checkpoint-every 4 >"$dir/kill.log" 2>&1 || r=$?
      echo "$r" >"$dir/kill.rc" ) &
    local i
    for i in $(seq 300); do [ -n "$(ls "$dir/ck" 2>/dev/null)" ] && [ -f "$dir/rank1.pid" ] && break; sleep 0.1; done
    [ -f "$dir/rank1.pid" ] && [ -n "$(ls "$dir/ck" 2>/dev/null)" ] || { wait; cat "$dir/kill.log"; die "distributed: no checkpoint within 30 s"; }
    kill -9 "$(cat "$dir/rank1.pid")"
    wait
    cat "$dir/kill.log"
    rc="$(cat "$dir/kill.rc")"
    [ "$rc" != 0 ] && [ "$rc" != 124 ] || die "distributed: after kill -9 of rank 1, mpirun exit code $rc (expected an error, within 60 s)"
    [ ! -e "$dir/killed.hpcnn" ] || die "distributed: the killed run finished before the kill landed (it wrote its model)"
    mpirun_local -np 2 dotnet "$HPCNN_CLI" train --resume "$dir/ck" -q --threads 1 >"$dir/resume.log" 2>&1 ||
        { cat "$dir/resume.log"; die "distributed: --resume under mpirun failed"; }
    cat "$dir/resume.log"
    same_weights "$dir/one.hpcnn" "$dir/killed.hpcnn" || die "distributed: the resumed run trained other weights than the uninterrupted one"
    rm -rf "$dir"
}

if [ "${1:-}" = "--distributed" ]; then
    build_cli
    test_distributed
    echo; echo "distributed tests passed ($(( SECONDS - start )) s)"
    exit 0
fi
[ $# -eq 0 ] || die "unknown argument '$1' (./build/test.sh [--distributed])"

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
HPCNN_CLI="$ROOT/src/HpCnn.Cli/bin/Release/net10.0/HpCnn.Cli.dll"
test_distributed

echo
echo "all tests passed ($(( SECONDS - start )) s)"
