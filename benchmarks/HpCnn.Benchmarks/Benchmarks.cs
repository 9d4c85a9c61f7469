using BenchmarkDotNet.Attributes;
using HpCnn.Kernels;
using HpCnn.Layers;

namespace HpCnn.Benchmarks;

/// <summary>
/// sgemm against OpenBLAS (baseline) on one thread: the squares and the im2col shapes of ANCHORS.md
/// (M, N, K as row-major C[M x N] = A[M x K] B[K x N]) plus odd sizes. Ratio &lt; 1 means HpCnn is faster.
/// </summary>
[MemoryDiagnoser]
public class Sgemm1T
{
    [Params("256x256x256", "512x512x512", "1024x1024x1024", "32x50176x9", "64x12544x288", "128x64x3136", "64x288x12544", "255x255x255", "17x1000x33")]
    public string Shape { get; set; } = "";

    private int _m, _n, _k;
    private float[] _a = [], _b = [], _c = [], _ws = [];

    [GlobalSetup]
    public void Setup()
    {
        (_m, _n, _k, _a, _b, _c) = Workloads.GemmOperands(Shape);
        _ws = new float[Sgemm.WorkspaceSize(_m, _n, _k)];
        OpenBlas.SetThreads(1);
    }

    [Benchmark(Baseline = true)]
    public void OpenBlasSgemm() => OpenBlas.Sgemm(false, false, _m, _n, _k, _a, _k, _b, _n, _c, _n);

    [Benchmark]
    public void HpCnnSgemm() => Sgemm.Multiply(false, false, _m, _n, _k, _a, _k, _b, _n, _c, _n, false, _ws);
}

/// <summary>sgemm on all threads: HpCnn's column-block split on its pool vs OpenBLAS with the same thread count.</summary>
[MemoryDiagnoser]
public class SgemmAllThreads
{
    [Params("1024x1024x1024", "32x50176x9", "64x12544x288", "128x64x3136", "64x288x12544")]
    public string Shape { get; set; } = "";

    private int _m, _n, _k;
    private float[] _a = [], _b = [], _c = [];
    private GemmJob _job = new();

    [GlobalSetup]
    public void Setup()
    {
        (_m, _n, _k, _a, _b, _c) = Workloads.GemmOperands(Shape);
        int t = Engine.Threads;
        _job = Workloads.GemmJob(_m, _n, _k, t);
        OpenBlas.SetThreads(t);
    }

    [Benchmark(Baseline = true)]
    public void OpenBlasSgemm() => OpenBlas.Sgemm(false, false, _m, _n, _k, _a, _k, _b, _n, _c, _n);

    [Benchmark]
    public void HpCnnSgemm()
    {
        _job.Set(false, false, _m, _n, _k, new Buffer(_a), _k, new Buffer(_b), _n, new Buffer(_c), _n, false, default, Engine.Threads);
        _job.RunOn(WorkerPool.Shared);
    }
}

/// <summary>Convolution shapes A, B, C of ANCHORS.md at batch 64: forward, and backward (input + weight gradients).</summary>
[MemoryDiagnoser]
public class ConvLayers
{
    [Params("A", "B", "C")]
    public string Shape { get; set; } = "";

    private Workloads.ConvRig _rig = null!;

    [GlobalSetup]
    public void Setup() => _rig = new Workloads.ConvRig(Shape, 64);

    [Benchmark]
    public void Forward() => _rig.Forward();

    [Benchmark]
    public void Backward() => _rig.Backward();
}

/// <summary>Max pooling 2x2 of the reference network's first block (64 x 32 x 28 x 28).</summary>
[MemoryDiagnoser]
public class Pooling
{
    private readonly float[] _x = Workloads.Random(32 * 28 * 28, 1), _y = new float[32 * 14 * 14], _dx = new float[32 * 28 * 28];
    private readonly int[] _idx = new int[32 * 14 * 14];
    private static readonly Pool2dShape S = new(32, 28, 28, 2, 2, 2, 2);

    [Benchmark]
    public void MaxForward64()
    {
        for (int n = 0; n < 64; n++) PoolKernels.MaxForward(S, _x, _y, _idx, 0, 32);
    }

    [Benchmark]
    public void MaxBackward64()
    {
        for (int n = 0; n < 64; n++) PoolKernels.MaxBackward(S, _y, _idx, _dx, 0, 32);
    }
}

/// <summary>One training step of the reference network (batch 64) and its inference at batch 1 and 256.</summary>
[MemoryDiagnoser]
public class ReferenceNetwork
{
    private Workloads.ReferenceRig _train = null!, _one = null!, _many = null!;

    [GlobalSetup]
    public void Setup()
    {
        _train = new Workloads.ReferenceRig(64);
        _one = new Workloads.ReferenceRig(1);
        _many = new Workloads.ReferenceRig(256);
    }

    [Benchmark]
    public double TrainStep64() => _train.TrainStep();

    [Benchmark]
    public void Inference1() => _one.Predict();

    [Benchmark]
    public void Inference256() => _many.Predict();
}
