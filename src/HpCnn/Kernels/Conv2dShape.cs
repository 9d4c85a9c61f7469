namespace HpCnn.Kernels;

/// <summary>
/// Geometry of a 2-D convolution on one image: input InC x InH x InW, OutC filters of KH x KW,
/// strides and per-side zero padding. Output OutC x OutH x OutW with
/// OutH = (InH + PadTop + PadBottom - KH) / StrideH + 1 (likewise OutW).
/// Weights are OutC x InC x KH x KW (PyTorch layout).
/// </summary>
public readonly record struct Conv2dShape(
    int InC, int InH, int InW, int OutC, int KH, int KW,
    int StrideH = 1, int StrideW = 1, int PadTop = 0, int PadLeft = 0, int PadBottom = 0, int PadRight = 0)
{
    public int OutH => (InH + PadTop + PadBottom - KH) / StrideH + 1;
    public int OutW => (InW + PadLeft + PadRight - KW) / StrideW + 1;
    /// <summary>Depth of the im2col GEMM: InC * KH * KW.</summary>
    public int K => InC * KH * KW;
    public int InSize => InC * InH * InW;
    public int OutPlane => OutH * OutW;
    public int OutSize => OutC * OutH * OutW;
    public int WeightCount => OutC * InC * KH * KW;

    /// <summary>Multiply-adds x 2 of the forward pass for one image.</summary>
    public long ForwardFlops => 2L * OutC * OutPlane * K;

    /// <summary>Throws with a message that names the problem when the geometry is not valid.</summary>
    public void Validate()
    {
        if (InC <= 0 || InH <= 0 || InW <= 0) throw new ArgumentException($"input must be positive in every dimension, got {InC}x{InH}x{InW}");
        if (OutC <= 0) throw new ArgumentException($"output channels must be positive, got {OutC}");
        if (KH <= 0 || KW <= 0) throw new ArgumentException($"kernel must be positive, got {KH}x{KW}");
        if (StrideH <= 0 || StrideW <= 0) throw new ArgumentException($"stride must be positive, got {StrideH}x{StrideW}");
        if (PadTop < 0 || PadLeft < 0 || PadBottom < 0 || PadRight < 0)
            throw new ArgumentException($"padding must be non-negative, got top {PadTop}, left {PadLeft}, bottom {PadBottom}, right {PadRight}");
        if (PadTop >= KH || PadBottom >= KH || PadLeft >= KW || PadRight >= KW)
            throw new ArgumentException($"padding ({PadTop},{PadLeft},{PadBottom},{PadRight}) must be smaller than the {KH}x{KW} kernel on each side");
        if (InH + PadTop + PadBottom < KH || InW + PadLeft + PadRight < KW)
            throw new ArgumentException($"a {KH}x{KW} kernel does not fit the {InH}x{InW} input with padding ({PadTop},{PadLeft},{PadBottom},{PadRight})");
        if ((long)K * OutPlane > int.MaxValue / 4 || (long)OutC * OutPlane > int.MaxValue / 4)
            throw new ArgumentException($"{this} is too large");
    }

    public override string ToString() =>
        $"{InC}x{InH}x{InW} -> {OutC}x{OutH}x{OutW}, kernel {KH}x{KW}, stride {StrideH}x{StrideW}, pad ({PadTop},{PadLeft},{PadBottom},{PadRight})";
}
