using HpCnn;
using HpCnn.Fuzz;
using SharpFuzz;

// HpCnn.Fuzz TARGET             run under afl-fuzz (SharpFuzz's out-of-process loop; build/fuzz.sh starts it)
// HpCnn.Fuzz TARGET FILE|DIR... replay files (a corpus, AFL's crashes): prints each unexpected exception, exit 1 if any
// HpCnn.Fuzz --write-seeds DIR   writes the seed corpus (tests/HpCnn.Fuzz/corpus)
if (args is ["--write-seeds", var seedDir])
{
    SeedCorpus.Write(seedDir);
    return 0;
}
if (args.Length == 0 || !FuzzTargets.All.TryGetValue(args[0], out var target))
{
    Console.Error.WriteLine($"usage: HpCnn.Fuzz {string.Join('|', FuzzTargets.All.Keys)} [FILE|DIR...]");
    return 2;
}
if (args.Length == 1)
{
    // Instrumented code (all of HpCnn) may only run inside the loop: SharpFuzz maps AFL's coverage memory there.
    Fuzzer.OutOfProcess.Run(stream =>
    {
        if (Engine.Threads != 1) Engine.Threads = 1;
        using var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        target(buffer.ToArray());
    });
    return 0;
}
Engine.Threads = 1;
int failures = 0, files = 0;
foreach (var arg in args.Skip(1))
{
    var paths = Directory.Exists(arg) ? Directory.GetFiles(arg, "*", SearchOption.AllDirectories).Order().ToArray() : new[] { arg };
    foreach (var path in paths)
    {
        files++;
        try { target(File.ReadAllBytes(path)); }
        catch (Exception e)
        {
            failures++;
            Console.WriteLine($"{path}: {e.GetType().Name}: {e.Message}");
            Console.WriteLine(e.StackTrace);
        }
    }
}
Console.WriteLine($"{args[0]}: {files} files, {failures} unexpected exceptions");
return failures == 0 ? 0 : 1;
