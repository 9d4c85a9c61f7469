using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.ML.OnnxRuntime;

// ONNX Runtime inference timing for benchmarks/zoo.py.
//   HpCnn.OrtBench MODEL.onnx [--batch 256,1] [--threads 1,2] [--calls N]
//       times each (batch, threads) and prints one JSON object: median seconds per call.
//   HpCnn.OrtBench --serve
//       reads requests "MODEL BATCH THREADS CALLS" from standard input, one per line, and answers each with a JSON
//       line {"times": [seconds per call, ...]}; sessions stay open between requests, so a caller can alternate
//       ORT with other engines call round by call round in one run.
// Sessions: graph optimisations on (ORT_ENABLE_ALL), sequential execution, intra-op threads as asked, ORT's
// default spinning; inputs and outputs are preallocated OrtValues, so a call times Run alone.
static class Program
{
    private sealed class Runner : IDisposable
    {
        private readonly InferenceSession _session;
        private readonly RunOptions _run = new();
        private readonly string[] _inputNames, _outputNames;
        private readonly Dictionary<int, (OrtValue In, OrtValue Out)> _byBatch = [];
        private readonly long[] _inShape, _outShape;

        public Runner(string model, int threads)
        {
            var options = new SessionOptions
            {
                GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
                ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
                IntraOpNumThreads = threads,
                InterOpNumThreads = 1,
            };
            _session = new InferenceSession(model, options);
            var input = _session.InputMetadata.First();
            var output = _session.OutputMetadata.First();
            _inputNames = [input.Key];
            _outputNames = [output.Key];
            _inShape = input.Value.Dimensions.Select(d => (long)d).ToArray();
            _outShape = output.Value.Dimensions.Select(d => (long)d).ToArray();
        }

        private (OrtValue In, OrtValue Out) Buffers(int batch)
        {
            if (_byBatch.TryGetValue(batch, out var b)) return b;
            long[] inShape = [batch, .. _inShape[1..]], outShape = [batch, .. _outShape[1..]];
            var rng = new Random(1);
            var x = new float[inShape.Aggregate(1L, (a, d) => a * d)];
            for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
            var y = new float[outShape.Aggregate(1L, (a, d) => a * d)];
            b = (OrtValue.CreateTensorValueFromMemory(x, inShape), OrtValue.CreateTensorValueFromMemory(y, outShape));
            _byBatch[batch] = b;
            return b;
        }

        /// <summary>Seconds of each of <paramref name="calls"/> calls at <paramref name="batch"/> (after one warm-up call).</summary>
        public double[] Time(int batch, int calls)
        {
            var (x, y) = Buffers(batch);
            var inputs = new[] { x };
            var outputs = new[] { y };
            _session.Run(_run, _inputNames, inputs, _outputNames, outputs);
            var t = new double[calls];
            for (int i = 0; i < calls; i++)
            {
                long s = Stopwatch.GetTimestamp();
                _session.Run(_run, _inputNames, inputs, _outputNames, outputs);
                t[i] = Stopwatch.GetElapsedTime(s).TotalSeconds;
            }
            return t;
        }

        public void Dispose()
        {
            foreach (var (x, y) in _byBatch.Values) { x.Dispose(); y.Dispose(); }
            _run.Dispose();
            _session.Dispose();
        }
    }

    private static string Json(IEnumerable<double> v) =>
        "[" + string.Join(", ", v.Select(d => d.ToString("R", CultureInfo.InvariantCulture))) + "]";

    private static double Median(double[] t)
    {
        var s = (double[])t.Clone();
        Array.Sort(s);
        return s[s.Length / 2];
    }

    public static int Main(string[] args)
    {
        if (args.Length == 1 && args[0] == "--serve") return Serve();
        if (args.Length == 0 || args[0].StartsWith('-'))
        {
            Console.Error.WriteLine("usage: HpCnn.OrtBench MODEL.onnx [--batch 256,1] [--threads 1,2] [--calls N] | --serve");
            return 2;
        }
        string model = args[0];
        int[] batches = [256, 1], threads = [1, 2];
        int calls = 0;
        for (int i = 1; i < args.Length; i++)
        {
            if (args[i] == "--batch") batches = Ints(args[++i]);
            else if (args[i] == "--threads") threads = Ints(args[++i]);
            else if (args[i] == "--calls") calls = int.Parse(args[++i], CultureInfo.InvariantCulture);
            else { Console.Error.WriteLine($"unknown argument '{args[i]}'"); return 2; }
        }
        var parts = new List<string> { $"\"ort_version\": \"{OrtEnv.Instance().GetVersionString()}\"" };
        foreach (int t in threads)
        {
            using var runner = new Runner(model, t);
            foreach (int b in batches)
            {
                int n = calls > 0 ? calls : b >= 64 ? 20 : 500;
                parts.Add($"\"batch{b}_threads{t}_s\": {Median(runner.Time(b, n)).ToString("R", CultureInfo.InvariantCulture)}");
            }
        }
        Console.WriteLine("{" + string.Join(", ", parts) + "}");
        return 0;
    }

    private static int[] Ints(string s) => s.Split(',').Select(v => int.Parse(v, CultureInfo.InvariantCulture)).ToArray();

    private static int Serve()
    {
        var runners = new Dictionary<(string, int), Runner>();
        Console.WriteLine($"{{\"ort_version\": \"{OrtEnv.Instance().GetVersionString()}\"}}");
        string? line;
        while ((line = Console.ReadLine()) != null)
        {
            var w = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (w.Length == 0) continue;
            try
            {
                if (w.Length != 4) throw new ArgumentException($"expected 'MODEL BATCH THREADS CALLS', got '{line}'");
                string model = w[0];
                int batch = int.Parse(w[1], CultureInfo.InvariantCulture), threads = int.Parse(w[2], CultureInfo.InvariantCulture);
                int calls = int.Parse(w[3], CultureInfo.InvariantCulture);
                if (!runners.TryGetValue((model, threads), out var r)) runners[(model, threads)] = r = new Runner(model, threads);
                Console.WriteLine($"{{\"times\": {Json(r.Time(batch, calls))}}}");
            }
            catch (Exception e) when (e is ArgumentException or FormatException or OnnxRuntimeException or IOException)
            {
                var msg = new StringBuilder(e.Message).Replace("\\", "\\\\").Replace("\"", "\\\"").Replace("\n", " ");
                Console.WriteLine($"{{\"error\": \"{msg}\"}}");
            }
        }
        foreach (var r in runners.Values) r.Dispose();
        return 0;
    }
}
