#!/usr/bin/env python3
"""The network zoo side by side: every network of benchmarks/zoo/*.json in HpCnn, in its PyTorch twin (built from the
same JSON by zoo_twin.py, HpCnn's initial weights copied in) and, for inference, in ONNX Runtime twice: the twin exported
with torch.onnx.export ("ORT") and HpCnn's own export of the network (model.save_onnx: the very same weights and graph as
HpCnn runs, "ORT-H"), both timed by benchmarks/HpCnn.OrtBench through ORT's C# API. Usage, from the repository root:

    /usr/bin/python3 benchmarks/zoo.py [--quick] [--threads 1,2] [--nets reference,vgg-bn] [--no-ort] [--no-conv]
                                       [--json out.json]

Per network and thread count: training steps at batch 64 (a fixed number of images per engine), inference at batch
256 and at batch 1; the engines alternate round by round in one process (ABBA order), and each figure is the median
of its per-call times. Then every convolution shape of the zoo at batch 64, forward, backward-data and
backward-weights, HpCnn (HpCnn.Benchmarks conv-shapes) against torch's convolution and its two gradients (aten
convolution_backward with one output each), alternated process by process. Each figure is also given as GFLOP/s and
as a share of the FMA peak probed in the same run (HpCnn.Benchmarks peak; the zmm probe where the CPU has AVX-512).

A fair peer: PyTorch runs tuned as ANCHORS.md says (OMP_NUM_THREADS=n and torch.set_num_threads(n),
OPENBLAS_NUM_THREADS=1, glibc malloc thresholds raised); OpenBLAS's core is read from OPENBLAS_VERBOSE=2 and, where
OpenBLAS 0.3.21 takes the CPU for an older one than its flags say (an AVX-512 Xeon seen as "Prescott"),
OPENBLAS_CORETYPE is set from /proc/cpuinfo's flags (see choose_coretype). The CPU model and the core that ran are
printed. HpCnn runs through its Python package (native-exports/python, the NativeAOT libhpcnn: the AVX-512 build
where the CPU has it); hpcnn_predict and hpcnn_train_batch are called with preallocated arrays, as torch is called
with prepared tensors and ORT with prepared OrtValues (hpcnn_predict with its pointers prepared, without ctypes'
per-call conversion of numpy arrays).

Needs python3-torch, python3-numpy, the .NET SDK and artifacts/native/libhpcnn*.so (./build/bench.sh --zoo sets all
of it up and runs this script).
"""
import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ZOO = os.path.join(HERE, "zoo")
BENCH_DLL = os.path.join(HERE, "HpCnn.Benchmarks", "bin", "Release", "net10.0", "HpCnn.Benchmarks.dll")
ORT_DLL = os.path.join(HERE, "HpCnn.OrtBench", "bin", "Release", "net10.0", "linux-x64", "HpCnn.OrtBench.dll")
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "native-exports", "python"))

BATCH_TRAIN = 64
# Quick runs: the networks that cover every kind of layer the issue names, fewer rounds.
QUICK_NETS = ["reference", "seed-binary", "lenet5", "vgg-bn", "allconv", "bottleneck"]


_START = time.monotonic()


def log(msg):
    print(f"{msg} [{time.monotonic() - _START:.0f} s]", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ the machine

def cpu_info():
    """Model name, vendor, family/model and flags of the first CPU in /proc/cpuinfo."""
    info = {"model_name": "unknown", "vendor": "unknown", "family": "?", "model": "?", "flags": set()}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    break
                k, _, v = line.partition(":")
                k, v = k.strip(), v.strip()
                if k == "model name":
                    info["model_name"] = v
                elif k == "vendor_id":
                    info["vendor"] = v
                elif k == "cpu family":
                    info["family"] = v
                elif k == "model":
                    info["model"] = v
                elif k == "flags":
                    info["flags"] = set(v.split())
    except OSError:
        pass
    info["cores"] = os.cpu_count()
    return info


_SGEMM_PROBE = """
import time
import numpy as np
a = np.random.rand(1024, 1024).astype(np.float32)
b = np.random.rand(1024, 1024).astype(np.float32)
a @ b
best = 1e9
for _ in range(8):
    s = time.perf_counter()
    a @ b
    best = min(best, time.perf_counter() - s)
print("GFLOPS", 2 * 1024 ** 3 / best / 1e9)
"""


def openblas_probe(env):
    """(core, GFLOP/s): the core OpenBLAS picks in a process with this environment ("Core: X" of OPENBLAS_VERBOSE=2)
    and its one-thread sgemm 1024^3 there (NumPy's matmul goes to the same libblas.so.3 as torch). (None, 0) when
    OpenBLAS is not found."""
    env = dict(env, OPENBLAS_VERBOSE="2", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    try:
        out = subprocess.run([sys.executable, "-c", _SGEMM_PROBE], env=env, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None, 0.0
    text = out.stdout + out.stderr
    core = re.findall(r"Core:\s*(\S+)", text)
    gflops = re.search(r"GFLOPS (\S+)", text)
    return (core[-1] if core else None), (float(gflops.group(1)) if gflops else 0.0)


# Cores of OpenBLAS 0.3.21's dynamic-arch list that run no AVX2/FMA kernels: on a CPU whose flags have AVX2 and FMA,
# picking one of them is a misdetection (one AVX-512 Xeon was taken for a Prescott; BENCHMARKS.md has its figures).
_OLD_CORES = {"prescott", "katmai", "coppermine", "northwood", "banias", "atom", "core2", "penryn", "dunnington",
              "nehalem", "sandybridge", "opteron", "opteron_sse3", "barcelona", "bobcat", "bulldozer", "piledriver",
              "steamroller", "excavator", "generic"}
_AVX512_CORES = {"skylakex", "cooperlake", "sapphirerapids"}


def coretype_candidate(cpu, detected):
    """The OPENBLAS_CORETYPE the CPU's flags call for when OpenBLAS picked less than they allow, else None. Decided
    from /proc/cpuinfo, never from one machine: a CPU with AVX-512 F/BW/VL/DQ gets the AVX-512 kernels (Cooperlake
    where it has BF16, else SkylakeX) when the detected core has none (OpenBLAS 0.3.21 took an AVX-512 Xeon for a
    Prescott); an AVX2 + FMA CPU detected as an older core gets Zen (AMD) or Haswell."""
    flags = cpu["flags"]
    core = (detected or "").lower()
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags and core not in _AVX512_CORES:
        return "Cooperlake" if "avx512_bf16" in flags else "SkylakeX"
    if {"avx2", "fma"} <= flags and (not core or core in _OLD_CORES):
        return "Zen" if cpu["vendor"] == "AuthenticAMD" else "Haswell"
    return None


def choose_coretype(cpu, forced=None):
    """The fair peer's OPENBLAS_CORETYPE (None: OpenBLAS's own choice) and the probes that decided it. Candidates:
    OpenBLAS's own detection (OPENBLAS_CORETYPE removed), the value inherited from the environment if any (a machine
    may set one that is not its best, e.g. AVX2 kernels on a CPU whose AVX-512 FMAs run at full width),
    and the core the CPU's flags call for (coretype_candidate). Each runs a one-thread sgemm; the fastest wins, and
    OpenBLAS's own choice stays unless another beats it by more than 5%. `forced` skips the choice."""
    own_env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    detected, base = openblas_probe(own_env)
    info = {"detected": detected, "detected_gflops": base, "coretype": None, "probes": {"(own detection)": [detected, base]}}
    if forced:
        info["coretype"] = forced
        info["probes"][forced] = list(openblas_probe(dict(own_env, OPENBLAS_CORETYPE=forced)))
        return info
    candidates = [c for c in (os.environ.get("OPENBLAS_CORETYPE"), coretype_candidate(cpu, detected)) if c]
    best = base * 1.05
    for cand in dict.fromkeys(candidates):
        core, g = openblas_probe(dict(own_env, OPENBLAS_CORETYPE=cand))
        info["probes"][cand] = [core, g]
        if g > best:
            info["coretype"], best = cand, g
    return info


def tuned_env(threads, coretype):
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               MALLOC_MMAP_THRESHOLD_="4294967296", MALLOC_TRIM_THRESHOLD_="4294967296")
    env.pop("OPENBLAS_CORETYPE", None)
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    return env


# ------------------------------------------------------------------------------------------------ helpers

def median(v):
    s = sorted(v)
    return s[len(s) // 2] if s else float("nan")


def run_json(cmd, env=None):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def probe_peak():
    """FMA peak of one core now (GFLOP/s): ymm and zmm probes of HpCnn.Benchmarks."""
    return run_json(["dotnet", BENCH_DLL, "peak", "0.5"])


def net_names(args):
    names = sorted(os.path.splitext(os.path.basename(p))[0] for p in glob.glob(os.path.join(ZOO, "*.json")))
    if args.nets:
        want = args.nets.split(",")
        unknown = [n for n in want if n not in names]
        if unknown:
            sys.exit(f"unknown zoo network(s) {unknown} (known: {', '.join(names)})")
        return want
    return [n for n in names if n in QUICK_NETS] if args.quick else names


def labels_for(twin, n, rng):
    classes = 2 if twin.outputs == 1 else twin.outputs
    return rng.integers(0, classes, n).astype("int32")


# ------------------------------------------------------------------------------------------------ the worker

class OrtServer:
    """HpCnn.OrtBench --serve: one ORT process for the worker's whole run, asked for rounds of timed calls."""

    def __init__(self):
        self.proc = subprocess.Popen(["dotnet", ORT_DLL, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1)
        self.version = json.loads(self.proc.stdout.readline())["ort_version"]

    def times(self, model, batch, threads, calls):
        self.proc.stdin.write(f"{model} {batch} {threads} {calls}\n")
        self.proc.stdin.flush()
        r = json.loads(self.proc.stdout.readline())
        if "error" in r:
            raise RuntimeError(f"ONNX Runtime on {model}: {r['error']}")
        return r["times"]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def worker(args):
    """One thread count, in a process started with the tuned environment; prints one JSON object."""
    import numpy as np
    import torch
    import hpcnn
    from hpcnn._native import lib as hlib
    import ctypes
    from zoo_twin import build_twin, copy_weights, load_spec

    t = args.threads_one
    torch.set_num_threads(t)
    hpcnn.set_threads(t)
    torch.manual_seed(0)
    rounds = 3 if args.quick else 5

    def settle():
        # On two threads the engine that ran last leaves helper threads spinning for a while (OpenMP, ORT, the
        # engine's pool): let them sleep before the next engine's round, as the sgemm comparison does.
        if t > 1:
            time.sleep(0.05)

    def timed(fn, calls):
        out = []
        for _ in range(calls):
            s = time.perf_counter()
            fn()
            out.append(time.perf_counter() - s)
        return out

    def alternate(engines, calls, rounds_):
        """engines: {name: fn}. Rounds of `calls` timed calls per engine, order reversed every other round (ABBA)."""
        times = {k: [] for k in engines}
        names = list(engines)
        for r in range(rounds_):
            for k in (names if r % 2 == 0 else names[::-1]):
                settle()
                times[k] += engines[k](calls)
        return {k: median(v) for k, v in times.items()}

    res = {"threads": t, "hpcnn_gemm_kernel": hpcnn.gemm_kernel(), "hpcnn_library": hpcnn.library_path,
           "torch": torch.__version__, "peak_before": probe_peak(), "networks": {}, "load_before": os.getloadavg()[0]}
    ort = None
    if args.onnx_dir and os.path.exists(ORT_DLL):
        ort = OrtServer()
        res["ort_version"] = ort.version

    # hpcnn_predict without ctypes' argument conversion: the same library, called with raw pointers.
    raw_predict = ctypes.CDLL(hpcnn.library_path).hpcnn_predict
    raw_predict.restype = ctypes.c_int
    raw_predict.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64]

    for name in args.net_list:
        log(f"-- {t}T {name}")
        spec = load_spec(os.path.join(ZOO, name + ".json"))
        hp = hpcnn.from_spec(spec)
        twin = build_twin(spec)
        copy_weights(hp, twin)
        c, h, w = spec["input"]
        rng = np.random.default_rng(1)
        r = {}

        # Training: the same batches for both engines, from the same initial weights.
        steps = (2 if args.quick else 4)
        nb = steps * 2
        x = rng.standard_normal((nb * BATCH_TRAIN, c, h, w), dtype=np.float32)
        y = labels_for(twin, nb * BATCH_TRAIN, rng)
        xb = [np.ascontiguousarray(x[i * BATCH_TRAIN:(i + 1) * BATCH_TRAIN]) for i in range(nb)]
        yb = [np.ascontiguousarray(y[i * BATCH_TRAIN:(i + 1) * BATCH_TRAIN]) for i in range(nb)]
        txb = [torch.from_numpy(a) for a in xb]
        tyb = [torch.from_numpy(a.astype("int64")) for a in yb]
        body = twin.body.train()
        opt = twin.optimizer(body.parameters())
        loss_out = ctypes.c_double()
        state = {"t": 0, "h": 0}

        def torch_steps(calls):
            def one():
                i = state["t"] % nb
                state["t"] += 1
                opt.zero_grad()
                twin.loss(body(txb[i]), tyb[i]).backward()
                opt.step()
            return timed(one, calls)

        def hp_steps(calls):
            def one():
                i = state["h"] % nb
                state["h"] += 1
                hpcnn._native.check(hlib.hpcnn_train_batch(hp._h, xb[i], yb[i], BATCH_TRAIN, ctypes.byref(loss_out)))
            return timed(one, calls)

        torch_steps(2)
        hp_steps(2)
        tr = alternate({"hpcnn": hp_steps, "torch": torch_steps}, steps, rounds)
        r["train_step_s"] = tr
        r["train_images"] = steps * rounds * BATCH_TRAIN

        # Inference: eval mode (BatchNorm's running statistics), probabilities out.
        pm = twin.predict_module().eval()
        onnx_path = os.path.join(args.onnx_dir, name + ".onnx") if args.onnx_dir else None
        for batch, calls in ((256, 2 if args.quick else 4), (1, 100 if args.quick else 200)):
            xi = rng.standard_normal((batch, c, h, w), dtype=np.float32)
            txi = torch.from_numpy(xi)
            out = np.empty((batch, twin.outputs), dtype=np.float32)

            def torch_pred(calls_):
                with torch.no_grad():
                    return timed(lambda: pm(txi), calls_)

            # The ORT side times Session.Run on prepared OrtValues inside its process; HpCnn's call gets its pointers
            # prepared too (ctypes' per-call checks of numpy arrays cost about 6 us, a twentieth of a batch-1 call).
            args_ = (hp._h, ctypes.c_void_p(xi.ctypes.data), ctypes.c_int64(batch),
                     ctypes.c_void_p(out.ctypes.data), ctypes.c_int64(out.size))

            def hp_pred(calls_):
                return timed(lambda: hpcnn._native.check(raw_predict(*args_)), calls_)

            engines = {"hpcnn": hp_pred, "torch": torch_pred}
            if ort is not None and onnx_path and os.path.exists(onnx_path):
                engines["ort"] = lambda calls_: ort.times(onnx_path, batch, t, calls_)
            hp_onnx_path = os.path.join(args.onnx_dir, name + ".hpcnn.onnx") if args.onnx_dir else None
            if ort is not None and hp_onnx_path and os.path.exists(hp_onnx_path):
                engines["ort_hpcnn"] = lambda calls_: ort.times(hp_onnx_path, batch, t, calls_)
            for fn in engines.values():
                fn(3 if batch == 1 else 1)
            r[f"infer{batch}_s"] = alternate(engines, calls, rounds)
        res["networks"][name] = r
        hp.close()

    if args.conv:
        res["conv"] = conv_shapes(args, t, rounds, settle)
    res["peak_after"] = probe_peak()
    res["load_after"] = os.getloadavg()[0]
    if ort is not None:
        ort.close()
    print(json.dumps(res))


def zoo_convs(net_list):
    """Every distinct convolution of the networks: {key: (ConvInfo, [network names])}."""
    from zoo_twin import build_twin, load_spec
    shapes = {}
    for name in net_list:
        for ci in build_twin(load_spec(os.path.join(ZOO, name + ".json"))).convs:
            shapes.setdefault(ci.key, (ci, []))[1].append(name)
    return shapes


def conv_shapes(args, t, rounds, settle):
    """Forward, backward-data, backward-weights of each zoo convolution at batch 64: torch here, HpCnn in
    HpCnn.Benchmarks conv-shapes; the two alternate by process rounds; medians over the rounds."""
    import torch
    import torch.nn.functional as F
    shapes = zoo_convs(args.net_list)
    reps = 5 if args.quick else 10
    b = BATCH_TRAIN
    conv_bwd = torch.ops.aten.convolution_backward

    def torch_round():
        out = {}
        for key, (ci, _) in shapes.items():
            g = torch.Generator().manual_seed(0)
            p = ci.pad
            symmetric = p[0] == p[2] and p[1] == p[3]
            x = torch.randn(b, ci.in_c, ci.in_h, ci.in_w, generator=g)
            if not symmetric:
                x = F.pad(x, (p[1], p[3], p[0], p[2]))
            pad = [p[0], p[1]] if symmetric else [0, 0]
            wt = torch.randn(ci.out_c, ci.in_c, ci.kh, ci.kw, generator=g) * 0.1
            bias = torch.randn(ci.out_c, generator=g) if ci.bias else None
            stride = [ci.sh, ci.sw]
            gy = torch.randn(b, ci.out_c, ci.out_h, ci.out_w, generator=g)
            bsz = [ci.out_c] if ci.bias else None

            def med(fn):
                fn()
                return median(timed(fn, reps))

            def timed(fn, n):
                v = []
                for _ in range(n):
                    s = time.perf_counter()
                    fn()
                    v.append(time.perf_counter() - s)
                return v
            with torch.no_grad():
                f = med(lambda: F.conv2d(x, wt, bias, stride, pad))
                dx = med(lambda: conv_bwd(gy, x, wt, bsz, stride, pad, [1, 1], False, [0, 0], 1, [True, False, False]))
                dw = med(lambda: conv_bwd(gy, x, wt, bsz, stride, pad, [1, 1], False, [0, 0], 1, [False, True, ci.bias]))
            out[key] = {"forward_s": f, "backward_data_s": dx, "backward_weights_s": dw}
        return out

    def hp_round():
        keys = ";".join(",".join(map(str, k)) for k in shapes)
        # A fresh process times each pass after two warm-up calls: under tiered compilation the first shapes then ran
        # partly on tier-0 and OSR code (32x14x14->64 forward 3.1 ms against 2.1 fully optimised). Steady state is what
        # a network's training runs (and the C library is compiled ahead of time), so the JIT compiles fully at once.
        r = run_json(["dotnet", BENCH_DLL, "conv-shapes", "--threads", str(t), "--batch", str(b), "--reps", str(reps),
                      "--shapes", keys], env=dict(os.environ, DOTNET_TieredCompilation="0"))
        return {tuple(int(v) for v in s["key"].split(",")): s for s in r["shapes"]}

    runs = {"torch": [], "hpcnn": []}
    for r in range(max(2, rounds - 2)):
        log(f"-- {t}T conv shapes, round {r + 1}")
        for eng in (("torch", "hpcnn") if r % 2 == 0 else ("hpcnn", "torch")):
            settle()
            runs[eng].append(torch_round() if eng == "torch" else hp_round())
    result = []
    for key, (ci, nets) in shapes.items():
        row = {"key": list(key), "name": ci.name(), "networks": nets, "forward_flops": ci.forward_flops * b}
        for eng in runs:
            for part in ("forward_s", "backward_data_s", "backward_weights_s"):
                row[f"{eng}_{part}"] = median([run[key][part] for run in runs[eng]])
        result.append(row)
    return result


# ------------------------------------------------------------------------------------------------ the parent

def prepare(args, net_list, onnx_dir):
    """Checks each twin against HpCnn once (the same weights, the same images) and exports it to ONNX; HpCnn's own
    export of the network goes beside it (NAME.hpcnn.onnx), with the same weights (the worker builds the same seed)."""
    import numpy as np
    import torch
    import hpcnn
    from zoo_twin import build_twin, compare_outputs, copy_weights, load_spec
    checks = {}
    for name in net_list:
        spec = load_spec(os.path.join(ZOO, name + ".json"))
        hp = hpcnn.from_spec(spec)
        twin = build_twin(spec)
        copy_weights(hp, twin)
        c, h, w = spec["input"]
        x = np.random.default_rng(7).standard_normal((8, c, h, w), dtype=np.float32)
        diff, tol = compare_outputs(hp, twin, x)
        checks[name] = {"max_diff": diff, "tolerance": tol, "ok": diff <= tol,
                        "forward_flops": twin.forward_flops, "training_flops": twin.training_flops,
                        "convs": len(twin.convs), "layers": len(spec["layers"])}
        if onnx_dir:
            m = twin.predict_module().eval()
            # featuremapnorm's twin (InstanceNorm2d without running statistics) normalises with each image's own
            # statistics in inference too, which torch.onnx warns about: that is what HpCnn computes.
            warnings.filterwarnings("ignore", message=".*instance_norm.*train=True.*")
            torch.onnx.export(m, torch.from_numpy(x[:1]), os.path.join(onnx_dir, name + ".onnx"), opset_version=13,
                              input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
            hp.save_onnx(os.path.join(onnx_dir, name + ".hpcnn.onnx"))
        hp.close()
    return checks


def build(args):
    def dotnet_build(project):
        r = subprocess.run(["dotnet", "build", project, "-c", "Release", "-v", "q", "-nologo"], capture_output=True, text=True)
        if r.returncode != 0:
            sys.stderr.write(r.stdout[-4000:] + r.stderr[-2000:])
            sys.exit(f"building {project} failed")
    dotnet_build(os.path.join(HERE, "HpCnn.Benchmarks"))
    if not args.no_ort:
        dotnet_build(os.path.join(HERE, "HpCnn.OrtBench"))


def pct(gflops, peak):
    return f"{100 * gflops / peak:4.0f}%" if peak > 0 else "  - "


def report(args, cpu, blas, checks, workers, net_list):
    lines = []
    p = lines.append
    p(f"CPU: {cpu['model_name']} ({cpu['vendor']}, family {cpu['family']} model {cpu['model']}, {cpu['cores']} cores visible; "
      f"AVX-512F {'yes' if 'avx512f' in cpu['flags'] else 'no'})")
    probes = ", ".join(f"{k} -> {v[0]} {v[1]:.0f}" for k, v in blas["probes"].items())
    p(f"OpenBLAS 0.3.21 sgemm 1024^3 1T probes, GFLOP/s: {probes}; OPENBLAS_CORETYPE {blas['coretype'] or '(not set)'}; "
      f"core that ran in the PyTorch processes: {', '.join(sorted(set(blas['ran'])) or ['?'])}")
    w0 = workers[0]
    p(f"HpCnn: {w0['hpcnn_gemm_kernel']} ({os.path.basename(w0['hpcnn_library'] or '?')}); PyTorch {w0['torch']}; "
      f"ONNX Runtime {w0.get('ort_version', '(not run)')}")
    for w in workers:
        pb, pa = w["peak_before"], w["peak_after"]
        w["peak_core"] = max(pb["fma_peak_gflops"], pb["fma512_peak_gflops"], pa["fma_peak_gflops"], pa["fma512_peak_gflops"])
        p(f"FMA peak probed, {w['threads']}T run: ymm {max(pb['fma_peak_gflops'], pa['fma_peak_gflops']):.1f}, "
          f"zmm {max(pb['fma512_peak_gflops'], pa['fma512_peak_gflops']):.1f} GFLOP/s per core "
          f"(shares below: of {w['peak_core']:.1f} x {w['threads']} cores); load average {w['load_before']:.1f} "
          f"before, {w['load_after']:.1f} after (above {cpu['cores']}: other work shared the cores)")
    p("")
    p("Twin check (HpCnn predict vs the PyTorch twin with HpCnn's weights, 8 random images, largest difference of the "
      "outputs / tolerance):")
    for n in net_list:
        ck = checks[n]
        p(f"  {n:12} {ck['max_diff']:.2e} / {ck['tolerance']:.1e} {'ok' if ck['ok'] else 'MISMATCH'}; "
          f"{ck['forward_flops'] / 1e6:.2f} MFLOP forward, {ck['training_flops'] / 1e6:.2f} MFLOP per trained image")
    rows = []
    tally = {True: 0, False: 0}

    def table(title, key, flops_of, unit_scale, unit, targets):
        p("")
        p(title)
        hdr = f"{'network':12} {'T':>2} {'HpCnn':>10} {'PyTorch':>10} {'ORT':>10} {'ORT-H':>10} {'H/PT':>6} {'H/ORT':>6} " \
              f"{'H/ORT-H':>7}  {'GFLOP/s H / PT / ORT':>24}  {'% of peak H / PT / ORT':>22}  targets"
        p(hdr)
        for n in net_list:
            for w in workers:
                v = w["networks"][n][key]
                fl = flops_of(n)
                h, pt, o = v["hpcnn"], v["torch"], v.get("ort")
                peak = w["peak_core"] * w["threads"]
                g = [fl / s / 1e9 if s else 0 for s in (h, pt, o or 0)]
                rp, ro = h / pt, (h / o if o else None)
                status = []
                for tname, tval, r in (("PT", targets[0], rp), ("ORT", targets[1], ro)):
                    if tval is not None and r is not None:
                        status.append(f"{tname} {'met' if r <= tval else 'MISSED'}")
                        tally[r <= tval] += 1
                ort_t = f"{o * unit_scale:10.3f}" if o else f"{'-':>10}"
                ort_r = f"{ro:6.2f}" if ro else f"{'-':>6}"
                oh = v.get("ort_hpcnn")
                roh = h / oh if oh else None
                orth_t = f"{oh * unit_scale:10.3f}" if oh else f"{'-':>10}"
                orth_r = f"{roh:7.2f}" if roh else f"{'-':>7}"
                ort_g = f"{g[2]:6.1f}" if o else f"{'-':>6}"
                p(f"{n:12} {w['threads']:>2} {h * unit_scale:10.3f} {pt * unit_scale:10.3f} {ort_t} {orth_t} {rp:6.2f} {ort_r} {orth_r}  "
                  f"{g[0]:7.1f} / {g[1]:6.1f} / {ort_g}  {pct(g[0], peak)} / {pct(g[1], peak)} / {pct(g[2], peak) if o else '  - '}"
                  f"  {', '.join(status)}")
                rows.append({"table": key, "network": n, "threads": w["threads"], "hpcnn_s": h, "torch_s": pt, "ort_s": o,
                             "ort_hpcnn_s": oh, "ratio_torch": rp, "ratio_ort": ro, "ratio_ort_hpcnn": roh, "gflops": g,
                             "peak_core": w["peak_core"]})
        p(f"(times in {unit}; ORT: ONNX Runtime on PyTorch's export of the twin, ORT-H: on HpCnn's own export, the same "
          f"weights and graph as HpCnn; ratio = HpCnn's time / the other's, below 1 = HpCnn faster; the targets are "
          f"against PyTorch and ORT on PyTorch's export)")

    table("Training, batch 64: time per step (forward, loss, backward, update)", "train_step_s",
          lambda n: checks[n]["training_flops"] * BATCH_TRAIN, 1e3, "ms per step", (0.5, None))
    table("Inference, batch 256: time per call", "infer256_s", lambda n: checks[n]["forward_flops"] * 256, 1e3,
          "ms per call", (0.5, 1.0))
    table("Inference, batch 1: latency", "infer1_s", lambda n: checks[n]["forward_flops"], 1e6, "us per call", (0.5, 1.0))

    if all("conv" in w for w in workers):
        p("")
        p("Convolution layers of the zoo alone, batch 64: HpCnn / PyTorch time (and HpCnn's share of the peak)")
        p(f"{'shape':28} {'T':>2} {'fwd ms H/PT':>15} {'ratio':>6} {'%pk':>5} {'bwd-data ms':>15} {'ratio':>6} {'%pk':>5} "
          f"{'bwd-wts ms':>15} {'ratio':>6} {'%pk':>5}  target (>= 16 channels: <= 1.0 and >= 70% at 1T)")
        for i, row0 in enumerate(workers[0]["conv"]):
            for w in workers:
                row = w["conv"][i]
                peak = w["peak_core"] * w["threads"]
                cells = []
                ok = True
                big = row["key"][0] >= 16 and row["key"][3] >= 16
                for part in ("forward_s", "backward_data_s", "backward_weights_s"):
                    h, pt = row[f"hpcnn_{part}"], row[f"torch_{part}"]
                    g = row["forward_flops"] / h / 1e9
                    cells.append(f"{h * 1e3:7.3f}/{pt * 1e3:7.3f} {h / pt:6.2f} {pct(g, peak)}")
                    ok &= h / pt <= 1.0 and (w["threads"] != 1 or g >= 0.7 * peak)
                    rows.append({"table": "conv", "shape": row["name"], "part": part, "threads": w["threads"],
                                 "hpcnn_s": h, "torch_s": pt, "ratio_torch": h / pt, "gflops": g})
                p(f"{row['name']:28} {w['threads']:>2} {' '.join(cells)}  {('met' if ok else 'MISSED') if big else '-'}")
                if big:
                    tally[ok] += 1
        p("(forward FLOPs counted for all three parts: backward-data and backward-weights do as many multiply-adds)")
    p("")
    p(f"Targets: {tally[True]} met, {tally[False]} missed (each network x thread count x comparison, each conv shape x "
      f"thread count)")
    return lines, rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer networks and rounds (a smoke run of a few minutes)")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--nets", help="comma-separated zoo network names (default: all; --quick: " + ",".join(QUICK_NETS) + ")")
    ap.add_argument("--no-ort", action="store_true", help="skip ONNX Runtime")
    ap.add_argument("--no-conv", action="store_true", help="skip the per-layer convolution comparison")
    ap.add_argument("--no-build", action="store_true", help="use the built benchmark programs as they are")
    ap.add_argument("--json", help="also write every figure to this file")
    ap.add_argument("--openblas-coretype", help="OPENBLAS_CORETYPE for PyTorch, instead of the fastest one probed")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--threads-one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--onnx-dir", help=argparse.SUPPRESS)
    ap.add_argument("--net-list", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        args.net_list = args.net_list.split(",")
        args.conv = not args.no_conv
        worker(args)
        return

    net_list = net_names(args)
    threads = [int(v) for v in args.threads.split(",")]
    cpu = cpu_info()
    blas = choose_coretype(cpu, args.openblas_coretype)
    blas["ran"] = []
    coretype = blas["coretype"]
    log(f"CPU: {cpu['model_name']}; OpenBLAS probes {blas['probes']}; OPENBLAS_CORETYPE={coretype or '(not set)'}")
    if not args.no_build:
        log("-- building HpCnn.Benchmarks" + ("" if args.no_ort else " and HpCnn.OrtBench"))
        build(args)
    if not glob.glob(os.path.join(ROOT, "artifacts", "native", "libhpcnn*.so")) and not os.environ.get("HPCNN_LIBRARY"):
        sys.exit("artifacts/native/libhpcnn.so is missing: run ./build/publish-native.sh first")
    with tempfile.TemporaryDirectory(prefix="hpcnn-zoo-") as tmp:
        onnx_dir = None if args.no_ort else tmp
        log("-- checking the twins against HpCnn" + ("" if args.no_ort else ", exporting them to ONNX"))
        checks = prepare(args, net_list, onnx_dir)
        workers = []
        for t in threads:
            env = tuned_env(t, coretype)
            env["OPENBLAS_VERBOSE"] = "2"
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--threads-one", str(t),
                   "--net-list", ",".join(net_list)] + (["--quick"] if args.quick else []) + \
                  (["--no-conv"] if args.no_conv else []) + (["--onnx-dir", onnx_dir] if onnx_dir else [])
            out_file = os.path.join(tmp, f"worker-{t}.json")
            with open(out_file, "w", encoding="utf-8") as out_f:
                proc = subprocess.Popen(cmd, env=env, stdout=out_f, stderr=subprocess.PIPE, text=True)
                # Progress goes through; OpenBLAS's "Core: X" (printed when torch loads it) is kept.
                err = []
                for line in proc.stderr:
                    err.append(line)
                    m = re.search(r"Core:\s*(\S+)", line)
                    if m:
                        blas["ran"].append(m.group(1))
                    elif line.startswith("-- "):
                        print(line.rstrip(), file=sys.stderr, flush=True)
                rc = proc.wait()
            with open(out_file, encoding="utf-8") as f:
                out = f.read()
            if rc != 0:
                sys.stderr.write("".join(err[-40:]))
                sys.exit(f"the {t}-thread worker failed")
            workers.append(json.loads(out.strip().splitlines()[-1]))
    lines, rows = report(args, cpu, blas, checks, workers, net_list)
    print("\n".join(lines))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"cpu": {k: v for k, v in cpu.items() if k != "flags"}, "openblas": blas, "checks": checks,
                       "workers": workers, "rows": rows, "report": lines,
                       "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}, f, indent=1, default=list)


if __name__ == "__main__":
    main()
