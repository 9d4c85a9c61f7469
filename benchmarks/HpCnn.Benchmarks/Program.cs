using BenchmarkDotNet.Running;
using HpCnn.Benchmarks;

// `side-by-side ...` is the HpCnn half of benchmarks/side_by_side.py; anything else goes to BenchmarkDotNet
// (e.g. --filter '*Sgemm1T*', --list flat).
if (args.Length > 0 && args[0] == "side-by-side") return SideBySide.Run(args[1..]);
if (args.Length > 0 && args[0] == "side-by-side-gemm") return SideBySideGemm.Run(args[1..]);
if (args.Length > 0 && args[0] == "sparse-profile") return SparseProfile.Run(args[1..]);
if (args.Length > 0 && args[0] == "profile") return LayerProfile.Run(args[1..]);
BenchmarkSwitcher.FromAssembly(typeof(Workloads).Assembly).Run(args);
return 0;
