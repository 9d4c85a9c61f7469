using System.CommandLine;

namespace HpCnn.Cli;

internal static class PredictCommand
{
    public static Command Create() => new("predict", "Predict the class of images (PNG or IDX)");
}
