namespace HpCnn.Layers;

/// <summary>How a convolution or pooling window pads its input.</summary>
public enum PaddingMode { Valid, Same, Explicit }

/// <summary>
/// Zero padding per side. <see cref="Same"/> keeps the output at ceil(input / stride) (TensorFlow's rule:
/// an odd total puts the extra row/column at the bottom/right); <see cref="Valid"/> pads nothing.
/// </summary>
public readonly record struct Padding(PaddingMode Mode, int Top = 0, int Left = 0, int Bottom = 0, int Right = 0)
{
    public static Padding Valid => new(PaddingMode.Valid);
    public static Padding Same => new(PaddingMode.Same);
    /// <summary>The same padding on every side.</summary>
    public static Padding Symmetric(int p) => new(PaddingMode.Explicit, p, p, p, p);
    /// <summary>Explicit per-side padding.</summary>
    public static Padding Explicit(int top, int left, int bottom, int right) => new(PaddingMode.Explicit, top, left, bottom, right);

    /// <summary>The per-side padding for an input of inH x inW.</summary>
    public (int Top, int Left, int Bottom, int Right) Resolve(int inH, int inW, int kh, int kw, int sh, int sw)
    {
        switch (Mode)
        {
            case PaddingMode.Valid: return (0, 0, 0, 0);
            case PaddingMode.Same:
                int outH = (inH + sh - 1) / sh, outW = (inW + sw - 1) / sw;
                int th = Math.Max((outH - 1) * sh + kh - inH, 0), tw = Math.Max((outW - 1) * sw + kw - inW, 0);
                return (th / 2, tw / 2, th - th / 2, tw - tw / 2);
            default: return (Top, Left, Bottom, Right);
        }
    }

    public override string ToString() => Mode switch
    {
        PaddingMode.Valid => "valid",
        PaddingMode.Same => "same",
        _ => Top == Left && Left == Bottom && Bottom == Right ? $"{Top}" : $"({Top},{Left},{Bottom},{Right})",
    };
}
