using System.Buffers.Binary;
using System.IO.Compression;

namespace HpCnn.Data;

/// <summary>The unsigned-byte tensor of an IDX file: its dimensions and data.</summary>
public sealed record IdxTensor(int[] Dimensions, byte[] Data)
{
    public int Count => Dimensions[0];
}

/// <summary>
/// Reader and writer of the IDX format of MNIST and Fashion-MNIST (raw or gzip-compressed, detected from the
/// content). Every check names the file and what is wrong: magic number, data type, number of dimensions,
/// sizes, truncation, trailing bytes. Sizes come from the header and are checked before anything large is
/// allocated; a gzip stream is never inflated past the size its header announces.
/// </summary>
public static class Idx
{
    private const byte UnsignedByte = 0x08;
    /// <summary>Largest tensor accepted (1 GiB): a header asking for more is rejected, not allocated.</summary>
    public const long MaxBytes = 1L << 30;

    /// <summary>Reads an IDX file of unsigned bytes with <paramref name="expectedDims"/> dimensions (null: any of 1..4).</summary>
    public static IdxTensor Read(string path, int? expectedDims = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"IDX file not found: {path}", path);
        using var file = File.OpenRead(path);
        Stream stream = file;
        var head = new byte[2];
        int got = file.ReadAtLeast(head, 2, throwOnEndOfStream: false);
        file.Position = 0;
        bool gz = got == 2 && head[0] == 0x1f && head[1] == 0x8b;
        if (gz) stream = new GZipStream(file, CompressionMode.Decompress);
        try
        {
            return Read(stream, path, expectedDims);
        }
        catch (InvalidDataException e) when (gz && !e.Message.StartsWith(path))
        {
            throw new InvalidDataException($"{path}: corrupt gzip data ({e.Message})", e);
        }
        finally
        {
            if (gz) stream.Dispose();
        }
    }

    /// <summary>Reads an IDX tensor from a stream; <paramref name="name"/> is used in messages.</summary>
    public static IdxTensor Read(Stream stream, string name, int? expectedDims = null)
    {
        var header = new byte[4];
        int n = stream.ReadAtLeast(header, 4, throwOnEndOfStream: false);
        if (n < 4) throw new InvalidDataException($"{name}: truncated header ({n} of 4 bytes of the magic number)");
        if (header[0] != 0 || header[1] != 0)
            throw new InvalidDataException($"{name}: not an IDX file (magic number 0x{header[0]:X2}{header[1]:X2}{header[2]:X2}{header[3]:X2}, expected 0x0000080N)");
        if (header[2] != UnsignedByte)
            throw new InvalidDataException($"{name}: data type 0x{header[2]:X2} is not supported (only unsigned bytes, 0x08)");
        int dims = header[3];
        if (dims < 1 || dims > 4) throw new InvalidDataException($"{name}: {dims} dimensions (expected 1 to 4)");
        if (expectedDims is int e && dims != e)
            throw new InvalidDataException($"{name}: has {dims} dimension(s), expected {e} ({(e == 1 ? "a label file" : "an image file")})");
        var dimBytes = new byte[4 * dims];
        n = stream.ReadAtLeast(dimBytes, dimBytes.Length, throwOnEndOfStream: false);
        if (n < dimBytes.Length) throw new InvalidDataException($"{name}: truncated header ({4 + n} of {4 + dimBytes.Length} bytes)");
        var shape = new int[dims];
        long total = 1;
        for (int i = 0; i < dims; i++)
        {
            uint d = BinaryPrimitives.ReadUInt32BigEndian(dimBytes.AsSpan(4 * i));
            if (d == 0 || d > int.MaxValue) throw new InvalidDataException($"{name}: dimension {i} is {d}");
            shape[i] = (int)d;
            total *= d;
            if (total > MaxBytes) throw new InvalidDataException($"{name}: header announces {string.Join("x", shape.Take(i + 1))}... bytes, more than the {MaxBytes >> 20} MiB limit");
        }
        var data = ReadAnnounced(stream, (int)total, out n);
        if (n < total)
            throw new InvalidDataException($"{name}: truncated: the header announces {string.Join("x", shape)} = {total} bytes of data, the file holds {n}");
        if (stream.ReadByte() >= 0)
            throw new InvalidDataException($"{name}: has data past the {string.Join("x", shape)} bytes its header announces");
        return new IdxTensor(shape, data);
    }

    /// <summary>
    /// Reads up to <paramref name="total"/> bytes. The buffer grows with the data that actually arrives (doubling from
    /// 1 MiB): a header is not trusted with the allocation, so an 11-byte file announcing 500 MB is refused as truncated
    /// at once instead of first allocating and zeroing 500 MB (found by fuzzing: 2 s per such input).
    /// </summary>
    private static byte[] ReadAnnounced(Stream stream, int total, out int read)
    {
        if (stream.CanSeek && stream.Length - stream.Position < total)
        {
            read = (int)Math.Max(0, stream.Length - stream.Position);
            return [];
        }
        var data = new byte[Math.Min(total, 1 << 20)];
        read = 0;
        while (true)
        {
            int n = stream.Read(data, read, data.Length - read);
            read += n;
            if (n == 0 || read == total) return data;
            if (read == data.Length) Array.Resize(ref data, (int)Math.Min(total, 2L * data.Length));
        }
    }

    /// <summary>Writes an unsigned-byte IDX file (gzip-compressed when <paramref name="gzip"/>).</summary>
    public static void Write(string path, ReadOnlySpan<byte> data, int[] dimensions, bool gzip = false)
    {
        long total = 1;
        foreach (int d in dimensions) total *= d;
        if (total != data.Length) throw new ArgumentException($"IDX write: {string.Join("x", dimensions)} needs {total} bytes, got {data.Length}");
        using var file = File.Create(path);
        using Stream s = gzip ? new GZipStream(file, CompressionLevel.Fastest) : file;
        s.Write([0, 0, UnsignedByte, (byte)dimensions.Length]);
        Span<byte> d4 = stackalloc byte[4];
        foreach (int d in dimensions) { BinaryPrimitives.WriteInt32BigEndian(d4, d); s.Write(d4); }
        s.Write(data);
    }

    /// <summary>
    /// Loads an image file (N x H x W, or N x C x H x W) and its label file as a dataset with pixels scaled to
    /// [0, 1]. <paramref name="classCount"/> defaults to the largest label + 1.
    /// </summary>
    public static Dataset LoadDataset(string imagesPath, string labelsPath, int? classCount = null, IReadOnlyList<string>? classNames = null)
    {
        var images = Read(imagesPath);
        if (images.Dimensions.Length < 3)
            throw new InvalidDataException($"{imagesPath}: has {images.Dimensions.Length} dimension(s), expected 3 (count x rows x columns) or 4 (count x channels x rows x columns)");
        var labels = Read(labelsPath, 1);
        int count = images.Count;
        if (labels.Count != count)
            throw new InvalidDataException($"{imagesPath} holds {count} images but {labelsPath} holds {labels.Count} labels");
        var shape = images.Dimensions.Length == 3
            ? new Shape3(1, images.Dimensions[1], images.Dimensions[2])
            : new Shape3(images.Dimensions[1], images.Dimensions[2], images.Dimensions[3]);
        int classes = classCount ?? classNames?.Count ?? labels.Data.Max() + 1;
        var lab = new int[count];
        for (int i = 0; i < count; i++)
        {
            lab[i] = labels.Data[i];
            if (lab[i] >= classes) throw new InvalidDataException($"{labelsPath}: label {lab[i]} of item {i} is outside [0, {classes})");
        }
        var px = new float[images.Data.Length];
        const float inv = 1f / 255f;
        for (int i = 0; i < px.Length; i++) px[i] = images.Data[i] * inv;
        return new Dataset(px, lab, shape, classes, classNames);
    }
}
