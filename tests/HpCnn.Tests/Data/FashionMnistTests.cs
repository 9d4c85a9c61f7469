using HpCnn.Data;

namespace HpCnn.Tests.Data;

public class FashionMnistTests
{
    [Test]
    public void LoadsTheDebianDataset()
    {
        var (train, test) = FashionMnistData.LoadOrIgnore();
        Assert.That(train.Count, Is.EqualTo(60_000));
        Assert.That(test.Count, Is.EqualTo(10_000));
        Assert.That(train.Shape, Is.EqualTo(new Shape3(1, 28, 28)));
        Assert.That(test.Shape, Is.EqualTo(new Shape3(1, 28, 28)));
        Assert.That(train.ClassCount, Is.EqualTo(10));
        Assert.That(train.ClassNames, Is.EqualTo(FashionMnist.ClassNames));
        Assert.That(train.ClassName(1), Is.EqualTo("Trouser"));
        // Balanced: 6,000 training and 1,000 test images per class, labels 0..9.
        Assert.That(train.ClassCounts(), Is.All.EqualTo(6000));
        Assert.That(test.ClassCounts(), Is.All.EqualTo(1000));
        Assert.That(train.Labels, Is.All.InRange(0, 9));
        // Pixels scaled to [0, 1], with the documented training mean and std.
        float min = float.MaxValue, max = float.MinValue;
        double sum = 0, sq = 0;
        foreach (float v in train.Images)
        {
            min = Math.Min(min, v);
            max = Math.Max(max, v);
            sum += v;
            sq += (double)v * v;
        }
        Assert.That(min, Is.EqualTo(0f));
        Assert.That(max, Is.EqualTo(1f));
        double mean = sum / train.Images.Length;
        double std = Math.Sqrt(sq / train.Images.Length - mean * mean);
        Assert.That(mean, Is.EqualTo(FashionMnist.TrainMean).Within(1e-4));
        Assert.That(std, Is.EqualTo(FashionMnist.TrainStd).Within(1e-4));
    }

    [Test]
    public void MissingFolderTellsHowToInstall()
    {
        string dir = Path.Combine(Path.GetTempPath(), "hpcnn-no-such-folder-" + Guid.NewGuid().ToString("N"));
        var e = Assert.Throws<FileNotFoundException>(() => FashionMnist.Load(dir))!;
        Assert.That(e.Message, Does.Contain("apt-get install dataset-fashion-mnist"));
        Assert.That(e.Message, Does.Contain(dir));
        Assert.That(e.Message, Does.Contain("train-images-idx3-ubyte"));
    }

    [Test]
    public void FolderWithSomeFilesNamesTheMissingOne()
    {
        var dir = Directory.CreateTempSubdirectory("hpcnn-fmnist-").FullName;
        try
        {
            // Raw (not gzip) files are found too; the test-set labels are missing.
            Idx.Write(Path.Combine(dir, "train-images-idx3-ubyte"), new byte[2 * 4], [2, 2, 2]);
            Idx.Write(Path.Combine(dir, "train-labels-idx1-ubyte.gz"), new byte[] { 3, 9 }, [2], gzip: true);
            Idx.Write(Path.Combine(dir, "t10k-images-idx3-ubyte.gz"), new byte[4], [1, 2, 2], gzip: true);
            var e = Assert.Throws<FileNotFoundException>(() => FashionMnist.Load(dir))!;
            Assert.That(e.Message, Does.Contain("t10k-labels-idx1-ubyte(.gz) not found in " + dir));
            Idx.Write(Path.Combine(dir, "t10k-labels-idx1-ubyte"), new byte[] { 1 }, [1]);
            var (train, test) = FashionMnist.Load(dir);
            Assert.That((train.Count, test.Count), Is.EqualTo((2, 1)));
            Assert.That(train.Labels, Is.EqualTo(new[] { 3, 9 }));
            Assert.That(train.Shape, Is.EqualTo(new Shape3(1, 2, 2)));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
