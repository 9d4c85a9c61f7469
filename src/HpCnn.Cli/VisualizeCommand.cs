using System.CommandLine;

namespace HpCnn.Cli;

internal static class VisualizeCommand
{
    public static Command Create() => new("visualize", "Draw a model's filters, feature maps and training curves");
}
