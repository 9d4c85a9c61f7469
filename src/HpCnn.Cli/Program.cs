using System.CommandLine;
using HpCnn.Cli;
using HpCnn.Distributed;
using Spectre.Console;

var root = new RootCommand("hpcnn: train, evaluate, inspect and visualise small convolutional networks on the CPU (HpCnn engine)")
{
    TrainCommand.Create(),
    EvalCommand.Create(),
    PredictCommand.Create(),
    InspectCommand.Create(),
    VisualizeCommand.Create(),
    BenchCommand.Create(),
    OnnxCommands.Export(),
    OnnxCommands.Import(),
    Shared.MaxGflops,
};
// Redirected output (logs, pipes, tests) gets wide tables instead of Spectre's 80-column default. Under mpirun the
// output is a pseudo-terminal of Open MPI's, whatever mpirun's own output is.
if (Console.IsOutputRedirected || Mpi.Launched)
    AnsiConsole.Profile.Width = int.TryParse(Environment.GetEnvironmentVariable("COLUMNS"), out int cols) && cols >= 40 ? cols : 160;
var parse = root.Parse(args);
if (parse.Errors.Count > 0)
{
    foreach (var e in parse.Errors) Console.Error.WriteLine($"error: {e.Message}");
    Console.Error.WriteLine($"run `hpcnn {(parse.CommandResult.Command == root ? "" : parse.CommandResult.Command.Name + " ")}--help` for usage");
    return ExitCodes.Usage;
}
// Under mpirun every process may fail on its own: say which one.
string who = Mpi.Launched ? $"rank {Mpi.Rank}: " : "";
try
{
    Shared.ApplyMaxGflops(parse.GetValue(Shared.MaxGflops));
    return parse.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
}
catch (CliException e)
{
    AnsiConsole.Console.Profile.Out.Writer.Flush();
    Console.Error.WriteLine($"{who}error: {e.Message}");
    return e.ExitCode;
}
catch (Exception e) when (e is ArgumentException or FormatException or InvalidDataException or IOException or InvalidOperationException or ArithmeticException or UnauthorizedAccessException)
{
    Console.Error.WriteLine($"{who}error: {e.Message}");
    return ExitCodes.Failure;
}
catch (Exception e)
{
    Console.Error.WriteLine($"{who}internal error (please report): {e}");
    return 70;
}
finally
{
    // MPI_Finalize before the exit code reaches mpirun (a fit that failed on every rank, e.g. ranks whose data differ,
    // ends here too; a failure on one rank inside a fit has already ended them all with MPI_Abort).
    if (Mpi.Initialized) Mpi.Shutdown();
}
