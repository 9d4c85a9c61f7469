using BenchmarkDotNet.Running;
using HpCnn.Benchmarks;

// Modes: `side-by-side` and `side-by-side-gemm` are the HpCnn halves of benchmarks/side_by_side.py; `conv-shapes`
// and `peak` those of benchmarks/zoo.py; `profile` times a training step layer by layer; `kernel-profile` times the
// step's kernels alone. Anything else goes to BenchmarkDotNet (e.g. --filter '*Sgemm1T*', --list flat).
if (args.Length > 0 && args[0] == "side-by-side") return SideBySide.Run(args[1..]);
if (args.Length > 0 && args[0] == "side-by-side-gemm") return SideBySideGemm.Run(args[1..]);
if (args.Length > 0 && args[0] == "kernel-profile") return KernelProfile.Run(args[1..]);
if (args.Length > 0 && args[0] == "profile") return LayerProfile.Run(args[1..]);
if (args.Length > 0 && args[0] == "conv-profile") return ConvProfile.Run(args[1..]);
if (args.Length > 0 && args[0] == "conv-shapes") return ZooConv.Run(args[1..]);
if (args.Length > 0 && args[0] == "peak") return ZooConv.Peak(args[1..]);
BenchmarkSwitcher.FromAssembly(typeof(Workloads).Assembly).Run(args);
return 0;
