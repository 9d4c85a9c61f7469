using HpCnn.Data;
using HpCnn.IO;
using HpCnn.Layers;
using HpCnn.Training;

namespace HpCnn.Tests.IO;

/// <summary>
/// The preprocessing record travels with the model: recorded by Fit from a standardised dataset, saved, reloaded in a
/// fresh model, applied by PredictRaw bit for bit as by hand; old files whose metadata held it still give it.
/// </summary>
public class PreprocessingTests
{
    private string _dir = null!;

    [SetUp]
    public void SetUp() => Directory.CreateDirectory(_dir = Path.Combine(Path.GetTempPath(), "hpcnn-prep-" + Guid.NewGuid().ToString("N")));

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, true);

    private static readonly Shape3 Input = new(2, 5, 4);

    /// <summary>Raw byte images as a camera gives them, and the dataset a loader makes of them (x * (1/255)).</summary>
    private static (byte[] Bytes, Dataset Data) RawImages(int count, ulong seed, int classes = 3)
    {
        var rng = new Rng(seed);
        var bytes = new byte[count * Input.Size];
        for (int i = 0; i < bytes.Length; i++) bytes[i] = (byte)rng.NextInt(256);
        const float inv = 1f / 255f;
        var px = bytes.Select(b => b * inv).ToArray();
        var labels = Enumerable.Range(0, count).Select(i => i % classes).ToArray();
        return (bytes, new Dataset(px, labels, Input, classes, new[] { "cat", "dog", "owl" }[..classes]));
    }

    private static Sequential NewModel() =>
        new Sequential(Input, seed: 3).Add(new Conv2D(3, 3, padding: Padding.Same)).Add(new ReLU())
            .Add(new Flatten()).Add(new Dense(3)).Compile(LossKind.CrossEntropy, new Sgd(0.05f, momentum: 0.9f));

    [Test]
    public void FitRecordsTheStandardisationAndClassNamesAndAReloadedModelPredictsRawPixelsBitwise([Values] StandardizeMode mode)
    {
        var (_, train) = RawImages(24, 1);
        var std = Standardization.Fit(train, mode);
        std.Apply(train);
        Assert.That(train.Standardization, Is.SameAs(std));
        var model = NewModel();
        Assert.That(model.Preprocessing.IsNone);
        model.Fit(train, new FitOptions { Epochs = 1, BatchSize = 8 });
        Assert.That(model.Preprocessing.Standardization, Is.SameAs(std));
        Assert.That(model.Preprocessing.ClassNames, Is.EqualTo(new[] { "cat", "dog", "owl" }));
        Assert.That(model.Preprocessing.PixelScale, Is.EqualTo(PixelScale.Unit));

        string path = Path.Combine(_dir, "m.hpcnn");
        model.Save(path);
        var reloaded = Sequential.Load(path);
        Assert.That(reloaded.Preprocessing, Is.EqualTo(model.Preprocessing));
        Assert.That(reloaded.Preprocessing.Standardization!.Mean, Is.EqualTo(std.Mean).AsCollection);

        var (raw, fresh) = RawImages(5, 99);
        var byHand = (float[])fresh.Images.Clone();
        std.Apply(byHand, Input.Size);
        var expected = model.Predict(byHand);
        Assert.That(reloaded.PredictRaw(raw).Probabilities, Is.EqualTo(expected.Probabilities).AsCollection, "bytes 0-255");
        Assert.That(reloaded.PredictRaw(fresh.Images).Probabilities, Is.EqualTo(expected.Probabilities).AsCollection, "floats 0-1");
        Assert.That(reloaded.PredictRaw(raw).Classes, Is.EqualTo(expected.Classes));
        var into = new float[5 * 3];
        reloaded.PredictRawInto(raw, into);
        Assert.That(into, Is.EqualTo(expected.Probabilities).AsCollection);
        // Without the record the raw pixels would be used as they are: the test can tell the two apart.
        Assert.That(model.Predict(fresh.Images).Probabilities, Is.Not.EqualTo(expected.Probabilities).AsCollection);
    }

    [Test]
    public void ByteScaleModelsTakeBytesAsTheyAre()
    {
        var model = NewModel();
        var st = Standardization.FromValues(120f, 60f);
        model.Preprocessing = new Preprocessing { PixelScale = PixelScale.Byte, Standardization = st };
        var (raw, _) = RawImages(2, 5);
        var byHand = raw.Select(b => (float)b).ToArray();
        st.Apply(byHand, Input.Size);
        Assert.That(model.PredictRaw(raw).Probabilities, Is.EqualTo(model.Predict(byHand).Probabilities).AsCollection);
        var reloaded = ModelFile.Read(ModelFile.ToBytes(model)).Model;
        Assert.That(reloaded.Preprocessing.PixelScale, Is.EqualTo(PixelScale.Byte));
        Assert.That(reloaded.PredictRaw(raw.Select(b => (float)b).ToArray()).Probabilities, Is.EqualTo(model.Predict(byHand).Probabilities).AsCollection);
    }

    [Test]
    public void BadRecordsAndRawValuesAreRefusedWithTheReason()
    {
        var model = NewModel();
        Assert.That(() => model.Preprocessing = new Preprocessing { Standardization = Standardization.Create(StandardizeMode.PerPixel, new float[7], Enumerable.Repeat(1f, 7).ToArray()) },
            Throws.ArgumentException.With.Message.Contains("images of 7 values, the model takes 2x5x4"));
        Assert.That(() => model.Preprocessing = new Preprocessing { ClassNames = ["a", "b", "c", "d"] },
            Throws.ArgumentException.With.Message.Contains("4 class names for a model that scores 3 classes"));
        var pixels = new float[Input.Size];
        pixels[17] = 200f;
        Assert.That(() => model.PredictRaw(pixels), Throws.ArgumentException.With.Message.Contains("value 200 of image 0 (pixel 17) is outside [0, 1]").And.Message.Contains("0-255"));
        pixels[17] = float.NaN;
        Assert.That(() => model.PredictRaw(pixels), Throws.ArgumentException.With.Message.Contains("NaN"));
        Assert.That(() => model.PredictRaw(new byte[Input.Size + 1]), Throws.ArgumentException.With.Message.Contains("images of 40 values, got 41"));
    }

    [Test]
    public void FitRefusesDataStandardisedOtherwiseThanTheModelRecords()
    {
        var (_, a) = RawImages(12, 1);
        var (_, b) = RawImages(12, 2);
        Standardization.Fit(a, StandardizeMode.Global).Apply(a);
        Standardization.Fit(b, StandardizeMode.Global).Apply(b);
        var model = NewModel();
        model.Fit(a, new FitOptions { Epochs = 1, BatchSize = 6 });
        Assert.That(() => model.Fit(b, new FitOptions { Epochs = 1, BatchSize = 6 }),
            Throws.ArgumentException.With.Message.Contains("standardised with other statistics than the model records"));
        // Fine-tuning on new data standardised with the model's statistics is what the message asks for.
        var (_, c) = RawImages(12, 3);
        model.Preprocessing.Standardization!.Apply(c);
        Assert.DoesNotThrow(() => model.Fit(c, new FitOptions { Epochs = 1, BatchSize = 6 }));
        Assert.That(() => model.Preprocessing.Standardization!.Apply(c), Throws.InvalidOperationException.With.Message.Contains("standardised already"));
    }

    [Test]
    public void SlicesShufflesAndFiltersKeepTheDatasetStandardisation()
    {
        var (_, d) = RawImages(12, 4);
        var st = Standardization.Fit(d, StandardizeMode.PerPixel);
        st.Apply(d);
        Assert.That(d.Slice(2, 3).Standardization, Is.SameAs(st));
        Assert.That(d.Shuffled(1).Standardization, Is.SameAs(st));
        Assert.That(d.FilterClasses(2, 0).Standardization, Is.SameAs(st));
        Assert.That(d.SplitFraction(0.25).Validation.Standardization, Is.SameAs(st));
    }

    [Test]
    public void ModelsWhoseMetadataHeldTheStandardisationLoadWithIt()
    {
        // The layout `hpcnn train` wrote before the engine kept the record: standardisation and class names in the meta
        // chunk, no prep chunk (ModelFile writes none for an empty record, so these are those files' bytes).
        var model = NewModel();
        model.Metadata = """{"dataset":"fashion-mnist","network":"x","classes":[1,3,5],"class_names":["Trouser","Dress","Sandal"],"standardization":{"mode":"global","mean":[0.286],"std":[0.353]},"history":[]}""";
        var bytes = ModelFile.ToBytes(model);
        Assert.That(System.Text.Encoding.ASCII.GetString(bytes), Does.Not.Contain("prep"));
        var loaded = ModelFile.Read(bytes).Model;
        Assert.That(loaded.Preprocessing.ClassNames, Is.EqualTo(new[] { "Trouser", "Dress", "Sandal" }));
        Assert.That(loaded.Preprocessing.Standardization, Is.EqualTo(Standardization.FromValues(0.286f, 0.353f)));
        // Saved again, the record goes into the prep chunk and wins over the metadata's copy.
        loaded.Preprocessing = loaded.Preprocessing with { ClassNames = ["a", "b", "c"] };
        Assert.That(ModelFile.Read(ModelFile.ToBytes(loaded)).Model.Preprocessing.ClassNames, Is.EqualTo(new[] { "a", "b", "c" }));
        // An application's own metadata may use the keys otherwise: the file still loads, without a record from them.
        model.Metadata = """{"standardization":"none","class_names":["a","b","c","d","e"]}""";
        Assert.That(ModelFile.Read(ModelFile.ToBytes(model)).Model.Preprocessing.IsNone);
        // The committed HpCnn 0.1 fixture has neither: an empty record.
        var fixture = ModelFile.Load(Path.Combine(TestContext.CurrentContext.TestDirectory, "Fixtures", "every-layer-v1.hpcnn")).Model;
        Assert.That(fixture.Preprocessing.IsNone);
    }

    [Test]
    public void AMalformedPrepChunkIsAnInvalidFile()
    {
        var model = NewModel();
        model.Preprocessing = new Preprocessing { ClassNames = ["a", "b", "c"], PixelScale = PixelScale.Byte };
        var bytes = ModelFile.ToBytes(model);
        string text = System.Text.Encoding.Latin1.GetString(bytes);
        int at = text.IndexOf("\"0-255\"", StringComparison.Ordinal);
        Assert.That(at, Is.GreaterThan(0));
        System.Text.Encoding.ASCII.GetBytes("\"0-256\"").CopyTo(bytes, at);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(bytes.Length - 4), System.IO.Hashing.Crc32.HashToUInt32(bytes.AsSpan(0, bytes.Length - 4)));
        Assert.That(() => ModelFile.Read(bytes, "bad.hpcnn"), Throws.InstanceOf<InvalidDataException>()
            .With.Message.Contains("bad.hpcnn").And.Message.Contains("prep chunk").And.Message.Contains("0-256"));
    }
}
