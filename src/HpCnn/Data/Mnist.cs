namespace HpCnn.Data;

/// <summary>
/// MNIST handwritten digits: IDX files with the same names as Fashion-MNIST's (train-images-idx3-ubyte(.gz),
/// train-labels-idx1-ubyte(.gz), t10k-images-idx3-ubyte(.gz), t10k-labels-idx1-ubyte(.gz)); 60,000 training and
/// 10,000 test images of 28 x 28, classes "0" to "9".
/// </summary>
public static class Mnist
{
    public static readonly IReadOnlyList<string> ClassNames = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

    public const string DownloadHint =
        "MNIST's four IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, " +
        "t10k-labels-idx1-ubyte.gz) are published at https://yann.lecun.com/exdb/mnist/ and mirrored by torchvision " +
        "(https://ossci-datasets.s3.amazonaws.com/mnist/); put them in one folder and give it as the directory.";

    /// <summary>The training (train = true) or test set of an MNIST folder, pixels in [0, 1].</summary>
    public static Dataset Load(string directory, bool train)
    {
        if (!Directory.Exists(directory)) throw new DirectoryNotFoundException($"MNIST folder not found: {directory}. {DownloadHint}");
        string prefix = train ? "train" : "t10k";
        return Idx.LoadDataset(FindFile(directory, $"{prefix}-images-idx3-ubyte"), FindFile(directory, $"{prefix}-labels-idx1-ubyte"), 10, ClassNames);
    }

    /// <summary>The training and test sets of an MNIST folder, pixels in [0, 1].</summary>
    public static (Dataset Train, Dataset Test) Load(string directory)
    {
        var train = Load(directory, true);
        var test = Load(directory, false);
        if (train.Shape != test.Shape)
            throw new InvalidDataException($"{directory}: training images are {train.Shape} but test images are {test.Shape}");
        return (train, test);
    }

    private static string FindFile(string directory, string stem)
    {
        foreach (var name in new[] { stem + ".gz", stem })
        {
            var p = Path.Combine(directory, name);
            if (File.Exists(p)) return p;
        }
        throw new FileNotFoundException($"MNIST file {stem}(.gz) not found in {directory}. {DownloadHint}", Path.Combine(directory, stem + ".gz"));
    }
}
