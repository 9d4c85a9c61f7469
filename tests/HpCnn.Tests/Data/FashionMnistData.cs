using HpCnn.Data;

namespace HpCnn.Tests.Data;

/// <summary>
/// Fashion-MNIST from the Debian package (<c>apt-get install dataset-fashion-mnist</c>), loaded once per test run.
/// Tests that need it are ignored when the folder is absent. The sets are shared: copy (FilterClasses, Slice)
/// before changing pixels.
/// </summary>
internal static class FashionMnistData
{
    private static readonly Lazy<(Dataset Train, Dataset Test)> s_sets = new(() => FashionMnist.Load());

    public static bool Present => Directory.Exists(FashionMnist.DefaultDirectory) &&
        Directory.EnumerateFiles(FashionMnist.DefaultDirectory, "train-images-idx3-ubyte*").Any();

    public static (Dataset Train, Dataset Test) LoadOrIgnore()
    {
        if (!Present) Assert.Ignore($"Fashion-MNIST is not installed in {FashionMnist.DefaultDirectory} (apt-get install dataset-fashion-mnist)");
        return s_sets.Value;
    }
}
