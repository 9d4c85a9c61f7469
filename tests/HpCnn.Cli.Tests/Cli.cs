using System.Diagnostics;

namespace HpCnn.Cli.Tests;

/// <summary>Runs the built hpcnn command (src/HpCnn.Cli/bin/Release/net10.0/HpCnn.Cli.dll, or $HPCNN_CLI) as a process.</summary>
internal static class Cli
{
    public sealed record Result(int ExitCode, string Out, string Err)
    {
        public string All => Out + Err;
    }

    public static string DllPath
    {
        get
        {
            string? env = Environment.GetEnvironmentVariable("HPCNN_CLI");
            if (!string.IsNullOrEmpty(env)) return env;
            string? dir = TestContext.CurrentContext.TestDirectory;
            while (dir is not null && !File.Exists(Path.Combine(dir, "HpCnn.sln"))) dir = Path.GetDirectoryName(dir);
            if (dir is null) throw new InvalidOperationException("repository root (HpCnn.sln) not found above the test directory");
            foreach (var config in new[] { "Release", "Debug" })
            {
                string p = Path.Combine(dir, "src", "HpCnn.Cli", "bin", config, "net10.0", "HpCnn.Cli.dll");
                if (File.Exists(p)) return p;
            }
            throw new InvalidOperationException("HpCnn.Cli.dll is not built: run dotnet build HpCnn.sln -c Release");
        }
    }

    public static string DataDir => "/usr/share/datasets/fashion-mnist";

    public static void RequireDataset()
    {
        if (!File.Exists(Path.Combine(DataDir, "train-images-idx3-ubyte.gz")))
            Assert.Ignore("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)");
    }

    public static Result Run(string workDir, params string[] args) => Run(workDir, TimeSpan.FromMinutes(5), args);

    public static Result Run(string workDir, TimeSpan timeout, params string[] args)
    {
        using var p = Start(workDir, args);
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(true);
            Assert.Fail($"hpcnn {string.Join(' ', args)} did not finish within {timeout}");
        }
        var r = new Result(p.ExitCode, stdout.Result, stderr.Result);
        TestContext.Out.WriteLine($"$ hpcnn {string.Join(' ', args)}  -> exit {r.ExitCode}\n{r.Out}{r.Err}");
        return r;
    }

    public static Process Start(string workDir, params string[] args) => Start(workDir, null, args);

    /// <summary>Starts the command with extra environment variables (<paramref name="environment"/> may be null).</summary>
    public static Process Start(string workDir, IReadOnlyDictionary<string, string>? environment, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { WorkingDirectory = workDir, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(DllPath);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["NO_COLOR"] = "1";
        psi.Environment["COLUMNS"] = "160";
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        return Process.Start(psi)!;
    }
}
