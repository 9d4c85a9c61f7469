#!/usr/bin/python3
"""Distributed training (issue 14) on one machine: the reference network, one Fashion-MNIST epoch, trained by
`hpcnn train` in one process with T threads and under mpirun in T processes of one thread each.
The issue's target: 2 ranks x 1 thread within 1.15x the time of 1 process x 2 threads.

    /usr/bin/python3 benchmarks/distributed.py [--ranks 2] [--rounds 3] [--quick] [--json out.json]

Run by ./build/bench.sh --distributed (which builds the command and installs Open MPI). Both engines run alternately,
in ABBA order, `--rounds` times; each is timed by the epoch's training seconds (the CLI's --metrics-json "seconds":
the batches, without the validation pass, process start-up and MPI start-up), and the best and the median are printed.
Per step: rank 0's time in collectives (TrainingHistory.CommunicationSeconds, "communication_seconds") over the
optimizer steps, and the rest of the step as compute. --quick: 12,000 images instead of 60,000.
The command line of the mpirun runs comes from $MPIRUN (build/common.sh's mpirun_local flags).
"""
import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CLI = os.environ.get("HPCNN_CLI", os.path.join(ROOT, "src", "HpCnn.Cli", "bin", "Release", "net10.0", "HpCnn.Cli.dll"))
TARGET = 1.15


def cpu_name():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            fields = dict(line.split(":", 1) for line in f.read().split("\n\n")[0].splitlines() if ":" in line)
        f = {k.strip(): v.strip() for k, v in fields.items()}
        return f"{f.get('model name', 'unknown')} (family {f.get('cpu family', '?')} model {f.get('model', '?')}), {os.cpu_count()} cores"
    except OSError:
        return "unknown CPU"


def train(prefix, threads, limit, workdir, tag):
    metrics = os.path.join(workdir, f"{tag}.json")
    cmd = prefix + ["dotnet", CLI, "train", "--net", "reference", "--epochs", "1", "-q", "--threads", str(threads),
                    "--metrics-json", metrics]
    if limit:
        cmd += ["--limit", str(limit)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{shlex.join(cmd)} failed ({out.returncode}):\n{out.stdout}{out.stderr}")
    with open(metrics, encoding="utf-8") as f:
        m = json.load(f)
    e = m["epochs"][0]
    return {"epoch_s": e["seconds"], "steps": m["steps"], "ranks": m["ranks"], "comm_s": m["communication_seconds"],
            "fit_s": m["fit_seconds"], "val_accuracy": e["val_accuracy"], "train_loss": e["train_loss"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ranks", type=int, default=2, help="processes of one thread, against one process of this many threads")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args()
    mpirun = shlex.split(os.environ.get("MPIRUN", "mpirun --allow-run-as-root --oversubscribe --bind-to none --mca btl self,vader -x TERM=dumb"))
    limit = 12000 if args.quick else None
    cpu = cpu_name()
    print(f"CPU: {cpu}", file=sys.stderr, flush=True)
    one, many = [], []
    with tempfile.TemporaryDirectory() as work:
        for r in range(args.rounds):
            order = ("one", "many") if r % 2 == 0 else ("many", "one")  # ABBA: a drifting machine favours neither
            for which in order:
                print(f"-- round {r + 1}/{args.rounds}: {'1 process x %d threads' % args.ranks if which == 'one' else '%d processes x 1 thread' % args.ranks} ...",
                      file=sys.stderr, flush=True)
                if which == "one":
                    one.append(train([], args.ranks, limit, work, f"one{r}"))
                else:
                    many.append(train(mpirun + ["-np", str(args.ranks)], 1, limit, work, f"many{r}"))
    # Same seed, same batches: the two must have trained the same model (the bit-for-bit check is build/test.sh's).
    if {(x["train_loss"], x["val_accuracy"]) for x in one} != {(x["train_loss"], x["val_accuracy"]) for x in many}:
        print("warning: the runs' losses differ: " + str([(x["train_loss"], x["val_accuracy"]) for x in one + many]), file=sys.stderr)

    best1, bestn = min(x["epoch_s"] for x in one), min(x["epoch_s"] for x in many)
    med1, medn = statistics.median(x["epoch_s"] for x in one), statistics.median(x["epoch_s"] for x in many)
    fastest = min(many, key=lambda x: x["epoch_s"])
    steps = fastest["steps"]
    comm_ms = 1000 * fastest["comm_s"] / steps
    step_ms = 1000 * fastest["epoch_s"] / steps
    ratio = bestn / best1
    print(f"\nCPU: {cpu}")
    print(f"reference network, 1 epoch of {limit or 60000:,} images in {steps} steps (the preset's batch size); "
          f"best (median) of {args.rounds} alternated rounds, training seconds:")
    print(f"  1 process x {args.ranks} threads   {best1:8.2f} s  ({med1:.2f})   {1000 * best1 / steps:6.2f} ms/step")
    print(f"  {args.ranks} processes x 1 thread  {bestn:8.2f} s  ({medn:.2f})   {step_ms:6.2f} ms/step: "
          f"{step_ms - comm_ms:.2f} compute + {comm_ms:.2f} communication ({100 * comm_ms / step_ms:.0f}%)")
    print(f"  ratio {ratio:.3f} (median {medn / med1:.3f}); target <= {TARGET}: {'met' if ratio <= TARGET else 'MISSED'}")
    print("  every round (1 process / mpirun, s): " + ", ".join(f"{a['epoch_s']:.2f}/{b['epoch_s']:.2f}" for a, b in zip(one, many)))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"cpu": cpu, "ranks": args.ranks, "limit": limit, "one_process": one, "mpirun": many, "ratio": ratio,
                       "comm_ms_per_step": comm_ms, "step_ms": step_ms}, f, indent=2)


if __name__ == "__main__":
    main()
