namespace HpCnn.Imaging;

/// <summary>Writes PNG files with StbImageWriteSharp (a managed port of stb_image_write).</summary>
public static class ImageEncoding
{
    /// <summary>The PNG bytes of an image (gray, gray + alpha, RGB or RGBA, 8 bits).</summary>
    public static byte[] EncodePng(RasterImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        var components = image.Format switch
        {
            PixelFormat.Gray => StbImageWriteSharp.ColorComponents.Grey,
            PixelFormat.GrayAlpha => StbImageWriteSharp.ColorComponents.GreyAlpha,
            PixelFormat.Rgb => StbImageWriteSharp.ColorComponents.RedGreenBlue,
            _ => StbImageWriteSharp.ColorComponents.RedGreenBlueAlpha,
        };
        using var ms = new MemoryStream();
        new StbImageWriteSharp.ImageWriter().WritePng(image.Pixels, image.Width, image.Height, components, ms);
        return ms.ToArray();
    }

    /// <summary>Writes an image as a PNG file.</summary>
    public static void WritePng(string path, RasterImage image) => File.WriteAllBytes(path, EncodePng(image));
}
