using System.Runtime.InteropServices;
using HpCnn.Data;

namespace HpCnn.Native;

public static unsafe partial class Exports
{
    private static Dataset DataOf(nint h, string argument = "dataset") => Handles.Get<NativeDataset>(h, argument).Data;

    private static nint NewDataset(Dataset d) => Handles.Add(new NativeDataset(d));

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_dataset_create")]
    public static int DatasetCreate(float* images, int* labels, long n, int c, int h, int w, int classes, nint* @out)
    {
        try
        {
            CheckOut(@out, "out");
            int count = CheckCount(n, "n");
            var shape = new Shape3(c, h, w);
            shape.Validate("dataset image shape");
            var px = Buffer(images, (long)count * shape.Size, (long)count * shape.Size, "images", "").ToArray();
            var lab = Buffer(labels, count, count, "labels", "").ToArray();
            *@out = NewDataset(new Dataset(px, lab, shape, classes));
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_dataset_load_idx")]
    public static int DatasetLoadIdx(byte* imagesPath, byte* labelsPath, int classes, nint* @out)
    {
        try
        {
            CheckOut(@out, "out");
            var d = Idx.LoadDataset(Utf8.Read(imagesPath, "images_path"), Utf8.Read(labelsPath, "labels_path"), classes > 0 ? classes : null);
            *@out = NewDataset(d);
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_dataset_load_fashion_mnist")]
    public static int DatasetLoadFashionMnist(byte* directory, int train, nint* @out)
    {
        try
        {
            CheckOut(@out, "out");
            string dir = directory == null ? FashionMnist.DefaultDirectory : Utf8.Read(directory, "directory");
            string prefix = train != 0 ? "train" : "t10k";
            var d = Idx.LoadDataset(FashionMnist.FindFile(dir, $"{prefix}-images-idx3-ubyte"), FashionMnist.FindFile(dir, $"{prefix}-labels-idx1-ubyte"),
                10, FashionMnist.ClassNames);
            *@out = NewDataset(d);
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_dataset_load_mnist")]
    public static int DatasetLoadMnist(byte* directory, int train, nint* @out)
    {
        try
        {
            CheckOut(@out, "out");
            *@out = NewDataset(Mnist.Load(Utf8.Read(directory, "directory"), train != 0));
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_dataset_load_cifar10")]
    public static int DatasetLoadCifar10(byte* directory, int train, nint* @out)
    {
        try
        {
            CheckOut(@out, "out");
            *@out = NewDataset(Cifar10.Load(Utf8.Read(directory, "directory"), train != 0));
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    private const int ImageFolderSkipUnreadable = 1, ImageFolderShuffle = 2;

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_dataset_load_image_folder")]
    public static int DatasetLoadImageFolder(byte* directory, int channels, int height, int width, int flags, ulong seed, long maxBytes,
        nint* outSkipped, nint* @out)
    {
        try
        {
            CheckOut(@out, "out");
            string dir = Utf8.Read(directory, "directory");
            if ((flags & ~(ImageFolderSkipUnreadable | ImageFolderShuffle)) != 0)
                throw new ArgumentException($"flags: unknown bits 0x{flags & ~(ImageFolderSkipUnreadable | ImageFolderShuffle):X} (known: HPCNN_IMAGE_FOLDER_SKIP_UNREADABLE, HPCNN_IMAGE_FOLDER_SHUFFLE)");
            if (channels is not (1 or 3)) throw new ArgumentException($"channels must be 1 (gray) or 3 (RGB), got {channels}");
            var skipped = new List<string>();
            var d = ImageFolder.Load(dir, new Shape3(channels, height, width), new ImageFolderOptions
            {
                Unreadable = (flags & ImageFolderSkipUnreadable) != 0 ? UnreadableImages.Skip : UnreadableImages.Fail,
                OnWarning = skipped.Add,
                Shuffle = (flags & ImageFolderShuffle) != 0,
                Seed = seed,
                MaxBytes = maxBytes > 0 ? maxBytes : null,
            });
            if (outSkipped != null) *outSkipped = skipped.Count > 0 ? Utf8.Alloc(string.Join("\n", skipped) + "\n") : 0;
            *@out = NewDataset(d);
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_dataset_class_name")]
    public static int DatasetClassName(nint dataset, int index, nint* @out)
    {
        try
        {
            CheckOut(@out, "out_name");
            var d = DataOf(dataset);
            if ((uint)index >= (uint)d.ClassCount) throw new ArgumentException($"index: class {index} is outside [0, {d.ClassCount})");
            *@out = Utf8.Alloc(d.ClassName(index));
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_dataset_release")]
    public static void DatasetRelease(nint dataset)
    {
        try { Handles.Remove<NativeDataset>(dataset); }
        catch (Exception e) { Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_dataset_info")]
    public static int DatasetInfo(nint dataset, long* n, int* c, int* h, int* w, int* classes)
    {
        try
        {
            var d = DataOf(dataset);
            CheckOut(n, "out_n"); CheckOut(c, "out_c"); CheckOut(h, "out_h"); CheckOut(w, "out_w"); CheckOut(classes, "out_classes");
            *n = d.Count; *c = d.Shape.C; *h = d.Shape.H; *w = d.Shape.W; *classes = d.ClassCount;
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_dataset_get_images")]
    public static int DatasetGetImages(nint dataset, float* output, long count)
    {
        try
        {
            var d = DataOf(dataset);
            d.Images.CopyTo(Buffer(output, count, d.Images.Length, "out", $"{d.Count} images of {d.Shape}"));
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_dataset_get_labels")]
    public static int DatasetGetLabels(nint dataset, int* output, long count)
    {
        try
        {
            var d = DataOf(dataset);
            d.Labels.CopyTo(Buffer(output, count, d.Count, "out", "one label per image"));
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_dataset_filter_classes")]
    public static int DatasetFilterClasses(nint dataset, int* classes, int k, nint* @out)
    {
        try
        {
            CheckOut(@out, "out");
            var keep = Buffer(classes, k, Math.Max(k, 0), "classes", "").ToArray();
            *@out = NewDataset(DataOf(dataset).FilterClasses(keep));
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_dataset_split_last")]
    public static int DatasetSplitLast(nint dataset, long count, nint* first, nint* last)
    {
        try
        {
            CheckOut(first, "out_first"); CheckOut(last, "out_last");
            var d = DataOf(dataset);
            if (count < 1 || count >= d.Count) throw new ArgumentException($"count must be in [1, {d.Count - 1}], got {count}");
            var (a, b) = d.SplitLast((int)count);
            *first = NewDataset(a);
            *last = NewDataset(b);
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_dataset_standardize")]
    public static int DatasetStandardize(nint fitOn, nint also, int mode)
    {
        try
        {
            var d = DataOf(fitOn, "fit_on");
            var other = also == 0 ? null : DataOf(also, "also");
            var m = mode switch
            {
                0 => StandardizeMode.Global,
                1 => StandardizeMode.PerPixel,
                _ => throw new ArgumentException($"mode must be HPCNN_STANDARDIZE_GLOBAL (0) or _PER_PIXEL (1), got {mode}"),
            };
            if (other is not null && other.Shape != d.Shape) throw new ArgumentException($"also: images are {other.Shape}, fit_on's are {d.Shape}");
            // Checked for both before either changes: a failure leaves both datasets as they were.
            if (d.Standardization is not null) throw new InvalidOperationException("fit_on: the dataset is standardised already; standardise the raw images once");
            if (other is not null && other.Standardization is not null) throw new InvalidOperationException("also: the dataset is standardised already; standardise the raw images once");
            var s = Standardization.Fit(d, m);
            s.Apply(d);
            if (other is not null && !ReferenceEquals(other, d)) s.Apply(other);
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }
}
