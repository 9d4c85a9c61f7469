using HpCnn.Tests.Model;

namespace HpCnn.Tests;

/// <summary>
/// The test assembly's entry point (the test SDK's generated one is turned off in the project): the test runner never calls
/// it, and tests start this assembly as a child process with <c>dotnet HpCnn.Tests.dll COMMAND ...</c> to do work that a
/// test then kills (<see cref="KillResumeTests"/>).
/// </summary>
public static class ChildProgram
{
    public static int Main(string[] args)
    {
        if (args.Length == 3 && args[0] == KillResumeTests.ChildCommand)
        {
            KillResumeTests.Train(args[1], args[2]);
            return 0;
        }
        Console.Error.WriteLine($"usage: dotnet HpCnn.Tests.dll {KillResumeTests.ChildCommand} CHECKPOINT_DIR OUT_MODEL (run by the tests)");
        return 2;
    }
}
