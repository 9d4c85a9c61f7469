namespace HpCnn.Data;

/// <summary>
/// Fashion-MNIST (and MNIST, which uses the same file names): 60,000 training and 10,000 test images of 28x28,
/// 10 classes. On Debian, <c>apt-get install dataset-fashion-mnist</c> puts the IDX files in
/// <see cref="DefaultDirectory"/>.
/// </summary>
public static class FashionMnist
{
    public const string DefaultDirectory = "/usr/share/datasets/fashion-mnist";

    public static readonly IReadOnlyList<string> ClassNames =
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

    /// <summary>Mean and standard deviation of the training pixels (scaled to [0, 1]).</summary>
    public const float TrainMean = 0.2860f, TrainStd = 0.3530f;

    /// <summary>The path of one of the four files in <paramref name="directory"/> (".gz" or raw), or a message saying what is missing.</summary>
    public static string FindFile(string directory, string stem)
    {
        foreach (var name in new[] { stem + ".gz", stem })
        {
            var p = Path.Combine(directory, name);
            if (File.Exists(p)) return p;
        }
        throw new FileNotFoundException(MissingMessage(directory, stem), Path.Combine(directory, stem + ".gz"));
    }

    public static string MissingMessage(string directory, string stem) =>
        $"Fashion-MNIST file {stem}(.gz) not found in {directory}. " +
        $"Install the dataset with `sudo apt-get install dataset-fashion-mnist` (it goes to {DefaultDirectory}), " +
        "or point --data-dir at a folder holding train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, " +
        "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz.";

    /// <summary>Loads the training and test sets with pixels in [0, 1].</summary>
    public static (Dataset Train, Dataset Test) Load(string? directory = null)
    {
        string dir = directory ?? DefaultDirectory;
        var train = Idx.LoadDataset(FindFile(dir, "train-images-idx3-ubyte"), FindFile(dir, "train-labels-idx1-ubyte"), 10, ClassNames);
        var test = Idx.LoadDataset(FindFile(dir, "t10k-images-idx3-ubyte"), FindFile(dir, "t10k-labels-idx1-ubyte"), 10, ClassNames);
        if (train.Shape != test.Shape)
            throw new InvalidDataException($"{dir}: training images are {train.Shape} but test images are {test.Shape}");
        return (train, test);
    }
}
