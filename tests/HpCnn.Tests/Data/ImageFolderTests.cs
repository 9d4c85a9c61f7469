using HpCnn.Data;
using HpCnn.Layers;
using HpCnn.Training;
using StbImageWriteSharp;

namespace HpCnn.Tests.Data;

/// <summary>Folders of PNG and JPEG files written by the test with StbImageWriteSharp, read as torchvision's ImageFolder does.</summary>
public class ImageFolderTests
{
    private string _dir = "";

    [SetUp]
    public void MakeDirectory() => _dir = Directory.CreateTempSubdirectory("hpcnn-imgfolder-").FullName;

    [TearDown]
    public void RemoveDirectory() => Directory.Delete(_dir, recursive: true);

    /// <summary>A w x h RGB image of one colour, written as PNG or JPEG (by extension) under <paramref name="relative"/>.</summary>
    internal static string WriteImage(string root, string relative, int w, int h, byte r, byte g, byte b)
    {
        var px = new byte[w * h * 3];
        for (int i = 0; i < w * h; i++) { px[3 * i] = r; px[3 * i + 1] = g; px[3 * i + 2] = b; }
        string path = Path.Combine(root, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using var file = File.Create(path);
        var writer = new ImageWriter();
        if (path.EndsWith(".png", StringComparison.OrdinalIgnoreCase)) writer.WritePng(px, w, h, ColorComponents.RedGreenBlue, file);
        else writer.WriteJpg(px, w, h, ColorComponents.RedGreenBlue, file, 95);
        return path;
    }

    [Test]
    public void ClassesAreTheSubfoldersSortedOrdinallyAndImagesAreResizedScaledAndLabelled()
    {
        WriteImage(_dir, "a/1.png", 8, 6, 255, 0, 0);
        WriteImage(_dir, "a/nested/2.JPG", 20, 20, 0, 0, 255);
        WriteImage(_dir, "B/x.png", 4, 4, 0, 255, 0);
        File.WriteAllText(Path.Combine(_dir, "a", "notes.txt"), "not an image");
        WriteImage(_dir, "loose.png", 4, 4, 9, 9, 9); // no class: ignored
        var d = ImageFolder.Load(_dir, new Shape3(3, 4, 4));
        Assert.That(d.ClassNames, Is.EqualTo(new[] { "B", "a" }), "ordinal order, as torchvision sorts: upper case first");
        Assert.That(d.Labels, Is.EqualTo(new[] { 0, 1, 1 }));
        Assert.That(d.Shape, Is.EqualTo(new Shape3(3, 4, 4)));
        Assert.That(d.Image(0)[16], Is.EqualTo(1f), "B/x.png is green: the green plane starts at 16");
        Assert.That(d.Image(0)[0], Is.EqualTo(0f));
        Assert.That(d.Image(1)[0], Is.EqualTo(1f).Within(1e-6f), "a/1.png, 8x6 resized, still pure red");
        Assert.That(d.Image(1)[31], Is.EqualTo(0f).Within(1e-6f));
        // A JPEG of pure blue decodes to nearly pure blue (lossy); 20x20 resized to 4x4.
        Assert.That(d.Image(2)[32], Is.EqualTo(1f).Within(0.03f));
        Assert.That(d.Image(2)[0], Is.EqualTo(0f).Within(0.03f));

        var gray = ImageFolder.Load(_dir, new Shape3(1, 2, 2));
        Assert.That(gray.Image(1)[0], Is.EqualTo(0.299f).Within(1e-3f), "red as luma");
        Assert.That(gray.Image(0)[3], Is.EqualTo(0.587f).Within(1e-3f), "green as luma");
    }

    [Test]
    public void CorruptFilesFailByNameOrAreSkippedWithAWarning()
    {
        WriteImage(_dir, "cat/ok.png", 4, 4, 10, 20, 30);
        WriteImage(_dir, "dog/ok.jpg", 4, 4, 10, 20, 30);
        string bad = Path.Combine(_dir, "cat", "broken.png");
        File.WriteAllBytes(bad, [0x89, (byte)'P', (byte)'N', (byte)'G', 1, 2, 3]);
        string cut = WriteImage(_dir, "dog/truncated.jpg", 16, 16, 1, 2, 3);
        File.WriteAllBytes(cut, File.ReadAllBytes(cut)[..40]);
        var shape = new Shape3(3, 4, 4);

        var e = Assert.Throws<InvalidDataException>(() => ImageFolder.Load(_dir, shape))!;
        Assert.That(e.Message, Does.Contain("2 of 4 image file(s) could not be read"));
        Assert.That(e.Message, Does.Contain(bad).And.Contain(cut), "every unreadable file is named");

        var warnings = new List<string>();
        var d = ImageFolder.Load(_dir, shape, new ImageFolderOptions { Unreadable = UnreadableImages.Skip, OnWarning = warnings.Add });
        Assert.That(d.Count, Is.EqualTo(2));
        Assert.That(d.Labels, Is.EqualTo(new[] { 0, 1 }));
        Assert.That(d.ClassNames, Is.EqualTo(new[] { "cat", "dog" }));
        Assert.That(warnings, Has.Count.EqualTo(2));
        Assert.That(warnings[0], Does.StartWith(bad).And.EndWith("skipped"));
        Assert.That(warnings[1], Does.StartWith(cut));
    }

    [Test]
    public void TheMemoryNeededIsCheckedBeforeAnyFileIsDecoded()
    {
        // Every file is corrupt: a decode error would mean the size was not checked first.
        for (int i = 0; i < 10; i++) File.WriteAllBytes(Path.Combine(Directory.CreateDirectory(Path.Combine(_dir, $"c{i % 2}")).FullName, $"{i}.png"), [1, 2, 3]);
        var shape = new Shape3(3, 64, 64);
        Assert.That(ImageFolder.EstimateBytes(10, shape), Is.EqualTo(10L * 3 * 64 * 64 * 4));
        var e = Assert.Throws<InsufficientMemoryException>(() => ImageFolder.Load(_dir, shape, new ImageFolderOptions { MaxBytes = 100_000 }))!;
        Assert.That(e.Message, Does.Contain("10 images x 3 x 64 x 64 x 4 bytes = 0.5 MiB").And.Contain("limit"));
        Assert.That(ImageFolder.DefaultMaxBytes(), Is.GreaterThan(0));
    }

    [Test]
    public void FolderMistakesAreNamed()
    {
        Assert.That(() => ImageFolder.Load(Path.Combine(_dir, "nope"), new Shape3(3, 4, 4)), Throws.TypeOf<DirectoryNotFoundException>().With.Message.Contains("nope"));
        WriteImage(_dir, "loose.png", 4, 4, 0, 0, 0);
        Assert.That(() => ImageFolder.Load(_dir, new Shape3(3, 4, 4)),
            Throws.TypeOf<InvalidDataException>().With.Message.Contains("no class folders").And.Message.Contains("directly in it"));
        WriteImage(_dir, "cat/1.png", 4, 4, 0, 0, 0);
        Directory.CreateDirectory(Path.Combine(_dir, "dog"));
        Assert.That(() => ImageFolder.Load(_dir, new Shape3(3, 4, 4)), Throws.TypeOf<InvalidDataException>().With.Message.Contains("class folder(s) dog"));
        Directory.Delete(Path.Combine(_dir, "dog"));
        Assert.That(() => ImageFolder.Load(_dir, new Shape3(2, 4, 4)), Throws.ArgumentException.With.Message.Contains("channels must be 1 (gray) or 3 (RGB), got 2"));
        Assert.That(() => ImageFolder.Load(_dir, new Shape3(3, 0, 4)), Throws.ArgumentException);
    }

    [Test]
    public void ASplitShufflesWithTheSeedAndKeepsEveryClassOnBothSides()
    {
        for (int i = 0; i < 10; i++)
        {
            WriteImage(_dir, $"red/{i}.png", 4, 4, (byte)(200 + i), 0, 0);
            WriteImage(_dir, $"blue/{i}.jpg", 4, 4, 0, 0, 255);
        }
        var shape = new Shape3(3, 4, 4);
        var (train, val) = ImageFolder.LoadSplit(_dir, shape, 0.25, new ImageFolderOptions { Seed = 7 });
        Assert.That((train.Count, val.Count), Is.EqualTo((15, 5)));
        Assert.That(train.ClassNames, Is.EqualTo(new[] { "blue", "red" }));
        Assert.That(val.ClassNames, Is.EqualTo(new[] { "blue", "red" }));
        Assert.That(train.Labels.Distinct().Count() + val.Labels.Distinct().Count(), Is.GreaterThanOrEqualTo(3), "not one class held out whole");
        var (again, _) = ImageFolder.LoadSplit(_dir, shape, 0.25, new ImageFolderOptions { Seed = 7 });
        Assert.That(again.Images, Is.EqualTo(train.Images), "the same seed, the same split");
        var (other, _) = ImageFolder.LoadSplit(_dir, shape, 0.25, new ImageFolderOptions { Seed = 8 });
        Assert.That(other.Images, Is.Not.EqualTo(train.Images));
        Assert.That(() => ImageFolder.LoadSplit(_dir, shape, 1.0), Throws.InstanceOf<ArgumentOutOfRangeException>());
    }

    [Test]
    public void ANetworkLearnsRedFromBlueFromAFolder()
    {
        var rng = new Random(5);
        for (int i = 0; i < 24; i++)
        {
            byte v = (byte)rng.Next(150, 256), o = (byte)rng.Next(0, 80);
            WriteImage(_dir, $"red/{i}.png", 12, 10, v, o, o);
            WriteImage(_dir, $"blue/{i}.jpg", 9, 9, o, o, v);
        }
        var (train, val) = ImageFolder.LoadSplit(_dir, new Shape3(3, 8, 8), 0.25);
        var model = new Sequential(new Shape3(3, 8, 8), seed: 3)
            .Add(new Conv2D(4, 3, padding: Padding.Same)).Add(new ReLU()).Add(new MaxPool2D(2))
            .Add(new Flatten()).Add(new Dense(2))
            .Compile(LossKind.CrossEntropy, new Sgd(0.05f, momentum: 0.9f));
        var history = model.Fit(train, new FitOptions { Epochs = 10, BatchSize = 4, Validation = val });
        Assert.That(history.Epochs[^1].ValAccuracy, Is.EqualTo(1.0), "red and blue are told apart");
    }
}
