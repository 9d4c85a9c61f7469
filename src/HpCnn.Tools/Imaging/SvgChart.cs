using System.Globalization;
using System.Text;
using System.Xml;

namespace HpCnn.Imaging;

/// <summary>
/// One line of a chart: <see cref="Values"/> over <see cref="X"/> (1, 2, ..., n when null: epochs).
/// NaN, infinite and absurdly large (|v| &gt; 1e300) values are gaps: the line breaks there.
/// </summary>
public sealed record ChartSeries(string Name, IReadOnlyList<double> Values)
{
    /// <summary>X coordinate of each value (same count as <see cref="Values"/>); null means 1, 2, ..., n.</summary>
    public IReadOnlyList<double>? X { get; init; }
    public bool Dashed { get; init; }
    /// <summary>A CSS colour; null picks the next one of a 10-colour palette.</summary>
    public string? Color { get; init; }
}

/// <summary>One plot: a title, axes labels, its series and optionally a fixed y range (e.g. 0 to 1 for accuracy).</summary>
public sealed record ChartPanel(string Title, IReadOnlyList<ChartSeries> Series)
{
    public string XLabel { get; init; } = "epoch";
    public string YLabel { get; init; } = "";
    /// <summary>Fixed bottom of the y axis; null fits the data (rounded out to a tick).</summary>
    public double? YMin { get; init; }
    /// <summary>Fixed top of the y axis; null fits the data (rounded out to a tick).</summary>
    public double? YMax { get; init; }
}

/// <summary>
/// A small SVG line-chart writer for training curves: panels laid out in a grid under an overall title, each
/// with a frame, grid lines at "nice" ticks (1, 2, 5 x 10^k; whole numbers only when every x is whole),
/// tick labels, axis labels, a legend and one <c>&lt;path data-series="name"&gt;</c> per series that has data.
/// Output is a standalone SVG document; numbers use the invariant culture and text is XML-escaped
/// (characters XML 1.0 cannot hold are dropped).
/// Kept hand-written rather than drawn with OxyPlot.Core 2.2.0: for two small panels of epoch curves this writer needs no
/// dependency, its structure is tested (one path per series, gaps at NaN, ticks at nice steps), and OxyPlot's SVG
/// export places text from estimated font metrics that would have to be checked by eye on every change.
/// </summary>
public static class SvgChart
{
    private static readonly string[] Palette =
        ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

    private const double Largest = 1e300;
    private const int MarginLeft = 64, MarginRight = 16, MarginTop = 32, MarginBottom = 44, TitleHeight = 36;

    /// <summary>
    /// Renders <paramref name="panels"/> in rows of <paramref name="columns"/>, each
    /// <paramref name="panelWidth"/> x <paramref name="panelHeight"/> pixels, under <paramref name="title"/>
    /// (no title row when it is empty).
    /// </summary>
    public static string Render(string title, IReadOnlyList<ChartPanel> panels, int columns = 2, int panelWidth = 480, int panelHeight = 320)
    {
        ArgumentNullException.ThrowIfNull(title);
        ArgumentNullException.ThrowIfNull(panels);
        if (panels.Count == 0) throw new ArgumentException("a chart needs at least one panel", nameof(panels));
        if (columns < 1) throw new ArgumentException($"columns must be positive, got {columns}", nameof(columns));
        if (panelWidth is < 200 or > 10000 || panelHeight is < 150 or > 10000)
            throw new ArgumentException($"panel size must be 200..10000 x 150..10000 pixels, got {panelWidth}x{panelHeight}");
        foreach (var panel in panels)
        {
            if (panel?.Series is null || panel.Title is null || panel.XLabel is null || panel.YLabel is null)
                throw new ArgumentException("a panel, its title, labels or series list is null", nameof(panels));
            foreach (var s in panel.Series)
            {
                if (s?.Name is null || s.Values is null)
                    throw new ArgumentException($"panel '{panel.Title}': a series, its name or its values is null", nameof(panels));
                if (s.X is not null && s.X.Count != s.Values.Count)
                    throw new ArgumentException($"series '{s.Name}' of panel '{panel.Title}' has {s.Values.Count} values but {s.X.Count} x coordinates");
            }
            if (panel.YMin is double lo && panel.YMax is double hi && !(lo < hi))
                throw new ArgumentException($"panel '{panel.Title}': YMin ({lo}) must be below YMax ({hi})");
        }

        columns = Math.Min(columns, panels.Count);
        int rows = (panels.Count + columns - 1) / columns;
        int top = title.Length > 0 ? TitleHeight : 0;
        int width = columns * panelWidth, height = top + rows * panelHeight;
        var svg = new StringBuilder();
        svg.Append(CultureInfo.InvariantCulture,
            $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">\n");
        svg.Append("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
        if (top > 0)
            svg.Append(CultureInfo.InvariantCulture,
                $"<text x=\"{F(width / 2.0)}\" y=\"24\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\">{Escape(title)}</text>\n");
        for (int p = 0; p < panels.Count; p++)
        {
            int x0 = p % columns * panelWidth, y0 = top + p / columns * panelHeight;
            RenderPanel(svg, panels[p], p, x0, y0, panelWidth, panelHeight);
        }
        svg.Append("</svg>\n");
        return svg.ToString();
    }

    /// <summary>Writes <see cref="Render"/>'s output to <paramref name="path"/> (UTF-8).</summary>
    public static void Write(string path, string title, IReadOnlyList<ChartPanel> panels, int columns = 2, int panelWidth = 480, int panelHeight = 320) =>
        File.WriteAllText(path, Render(title, panels, columns, panelWidth, panelHeight), new UTF8Encoding(false));

    /// <summary>
    /// The usual pair of panels, loss and accuracy side by side, with one value per epoch; training solid,
    /// validation dashed. An empty list leaves its series out (e.g. no validation set).
    /// </summary>
    public static string TrainingCurves(IReadOnlyList<double> trainLoss, IReadOnlyList<double> validationLoss,
        IReadOnlyList<double> trainAccuracy, IReadOnlyList<double> validationAccuracy, string title = "Training")
    {
        ChartSeries[] Pair(IReadOnlyList<double> train, IReadOnlyList<double> validation) =>
        [
            .. train.Count > 0 ? [new ChartSeries("train", train) { Color = Palette[0] }] : Array.Empty<ChartSeries>(),
            .. validation.Count > 0 ? [new ChartSeries("validation", validation) { Color = Palette[1], Dashed = true }] : Array.Empty<ChartSeries>(),
        ];
        return Render(title,
        [
            new ChartPanel("Loss", Pair(trainLoss, validationLoss)) { YLabel = "loss" },
            new ChartPanel("Accuracy", Pair(trainAccuracy, validationAccuracy)) { YLabel = "accuracy" },
        ]);
    }

    private static bool Plottable(double v) => double.IsFinite(v) && Math.Abs(v) <= Largest;

    private static void RenderPanel(StringBuilder svg, ChartPanel panel, int index, int x0, int y0, int width, int height)
    {
        double left = x0 + MarginLeft, top = y0 + MarginTop;
        double plotW = width - MarginLeft - MarginRight, plotH = height - MarginTop - MarginBottom;

        // Data ranges over the points that can be drawn.
        double xLo = double.PositiveInfinity, xHi = double.NegativeInfinity, yLo = double.PositiveInfinity, yHi = double.NegativeInfinity;
        bool wholeX = true;
        foreach (var s in panel.Series)
            for (int i = 0; i < s.Values.Count; i++)
            {
                double x = s.X?[i] ?? i + 1, y = s.Values[i];
                if (!Plottable(x) || !Plottable(y)) continue;
                xLo = Math.Min(xLo, x); xHi = Math.Max(xHi, x);
                yLo = Math.Min(yLo, y); yHi = Math.Max(yHi, y);
                wholeX &= x == Math.Floor(x);
            }
        bool empty = xLo > xHi;
        if (empty) { xLo = 0; xHi = 1; yLo = 0; yHi = 1; }
        if (xLo == xHi) { xLo -= 1; xHi += 1; }
        if (panel.YMin is double fixedLo) yLo = fixedLo;
        if (panel.YMax is double fixedHi) yHi = fixedHi;
        if (yLo >= yHi)
        {
            // A flat line, or data entirely beyond a fixed bound: open a window next to the fixed bound or around the value.
            static double Pad(double v) => v == 0 ? 1 : Math.Abs(v) * 0.1;
            if (panel.YMax is not null) yLo = yHi - 2 * Pad(yHi);
            else if (panel.YMin is not null) yHi = yLo + 2 * Pad(yLo);
            else { double pad = Pad(yLo); yLo -= pad; yHi += pad; }
        }
        double xStep = TickStep(xLo, xHi, wholeX);
        double yStep = TickStep(yLo, yHi, whole: false);
        if (panel.YMin is null) yLo = Math.Floor(yLo / yStep) * yStep;
        if (panel.YMax is null) yHi = Math.Ceiling(yHi / yStep) * yStep;

        double Px(double x) => left + (x - xLo) / (xHi - xLo) * plotW;
        double Py(double y) => top + plotH - (y - yLo) / (yHi - yLo) * plotH;

        svg.Append(CultureInfo.InvariantCulture, $"<g class=\"panel\" data-panel=\"{index}\">\n");
        svg.Append(CultureInfo.InvariantCulture,
            $"<clipPath id=\"plot-area-{index}\"><rect x=\"{F(left)}\" y=\"{F(top)}\" width=\"{F(plotW)}\" height=\"{F(plotH)}\"/></clipPath>\n");
        svg.Append(CultureInfo.InvariantCulture,
            $"<text x=\"{F(left + plotW / 2)}\" y=\"{F(y0 + 20)}\" text-anchor=\"middle\" font-size=\"14\">{Escape(panel.Title)}</text>\n");

        foreach (double x in Ticks(xLo, xHi, xStep))
        {
            double px = Px(x);
            svg.Append(CultureInfo.InvariantCulture,
                $"<line x1=\"{F(px)}\" y1=\"{F(top)}\" x2=\"{F(px)}\" y2=\"{F(top + plotH)}\" stroke=\"#e0e0e0\"/>" +
                $"<text x=\"{F(px)}\" y=\"{F(top + plotH + 16)}\" text-anchor=\"middle\">{Label(x, xStep)}</text>\n");
        }
        foreach (double y in Ticks(yLo, yHi, yStep))
        {
            double py = Py(y);
            svg.Append(CultureInfo.InvariantCulture,
                $"<line x1=\"{F(left)}\" y1=\"{F(py)}\" x2=\"{F(left + plotW)}\" y2=\"{F(py)}\" stroke=\"#e0e0e0\"/>" +
                $"<text x=\"{F(left - 6)}\" y=\"{F(py + 4)}\" text-anchor=\"end\">{Label(y, yStep)}</text>\n");
        }
        svg.Append(CultureInfo.InvariantCulture,
            $"<rect x=\"{F(left)}\" y=\"{F(top)}\" width=\"{F(plotW)}\" height=\"{F(plotH)}\" fill=\"none\" stroke=\"#333\"/>\n");
        svg.Append(CultureInfo.InvariantCulture,
            $"<text x=\"{F(left + plotW / 2)}\" y=\"{F(y0 + height - 8)}\" text-anchor=\"middle\">{Escape(panel.XLabel)}</text>\n");
        if (panel.YLabel.Length > 0)
        {
            double lx = x0 + 16, ly = top + plotH / 2;
            svg.Append(CultureInfo.InvariantCulture,
                $"<text x=\"{F(lx)}\" y=\"{F(ly)}\" text-anchor=\"middle\" transform=\"rotate(-90 {F(lx)} {F(ly)})\">{Escape(panel.YLabel)}</text>\n");
        }
        if (empty)
            svg.Append(CultureInfo.InvariantCulture,
                $"<text x=\"{F(left + plotW / 2)}\" y=\"{F(top + plotH / 2)}\" text-anchor=\"middle\" fill=\"#888\">no data</text>\n");

        var legend = new List<(string Name, string Colour, bool Dashed, bool HasData)>();
        var drawn = new List<(double X, double Y)>(); // points along every line, to keep the legend off them
        for (int si = 0; si < panel.Series.Count; si++)
        {
            var s = panel.Series[si];
            string colour = s.Color ?? Palette[si % Palette.Length];
            string dash = s.Dashed ? " stroke-dasharray=\"6 4\"" : "";
            bool Drawable(int i) => i >= 0 && i < s.Values.Count && Plottable(s.X?[i] ?? i + 1) && Plottable(s.Values[i]);
            var d = new StringBuilder();
            int points = 0;
            for (int i = 0; i < s.Values.Count; i++)
            {
                if (!Drawable(i)) continue;
                d.Append(Drawable(i - 1) ? " L" : points > 0 ? " M" : "M");
                double px = Px(s.X?[i] ?? i + 1), py = Py(s.Values[i]);
                d.Append(F(px)).Append(' ').Append(F(py));
                if (Drawable(i - 1))
                {
                    var (qx, qy) = drawn[^1];
                    for (int k = 1; k < 8; k++) drawn.Add((qx + (px - qx) * k / 8, qy + (py - qy) * k / 8));
                }
                drawn.Add((px, py));
                points++;
            }
            legend.Add((s.Name, colour, s.Dashed, points > 0));
            if (points == 0) continue;
            svg.Append(CultureInfo.InvariantCulture,
                $"<path data-series=\"{Escape(s.Name)}\" d=\"{d}\" fill=\"none\" stroke=\"{Escape(colour)}\" stroke-width=\"2\"{dash} clip-path=\"url(#plot-area-{index})\"/>\n");
            // Markers on every point of a short series; on a long one only where a point has no line to show it.
            bool markAll = points <= 40;
            for (int i = 0; i < s.Values.Count; i++)
            {
                if (!Drawable(i) || !(markAll || (!Drawable(i - 1) && !Drawable(i + 1)))) continue;
                svg.Append(CultureInfo.InvariantCulture,
                    $"<circle cx=\"{F(Px(s.X?[i] ?? i + 1))}\" cy=\"{F(Py(s.Values[i]))}\" r=\"2.5\" fill=\"{Escape(colour)}\" clip-path=\"url(#plot-area-{index})\"/>\n");
            }
        }

        if (legend.Count > 0)
        {
            const double lineH = 16, sample = 24;
            int longest = legend.Max(l => l.Name.Length + (l.HasData ? 0 : 10));
            double boxW = Math.Min(plotW - 8, 16 + sample + 7.0 * longest), boxH = 8 + lineH * legend.Count;
            // The corner whose box covers the fewest points of the lines; top right on a tie.
            double bx = 0, by = 0;
            int fewest = int.MaxValue;
            foreach (var (cx, cy) in new[] { (left + plotW - boxW - 6, top + 6), (left + plotW - boxW - 6, top + plotH - boxH - 6),
                                             (left + 6, top + 6), (left + 6, top + plotH - boxH - 6) })
            {
                int covered = drawn.Count(q => q.X >= cx - 4 && q.X <= cx + boxW + 4 && q.Y >= cy - 4 && q.Y <= cy + boxH + 4);
                if (covered < fewest) { fewest = covered; bx = cx; by = cy; }
            }
            svg.Append(CultureInfo.InvariantCulture,
                $"<g class=\"legend\"><rect x=\"{F(bx)}\" y=\"{F(by)}\" width=\"{F(boxW)}\" height=\"{F(boxH)}\" fill=\"white\" fill-opacity=\"0.85\" stroke=\"#ccc\"/>\n");
            for (int i = 0; i < legend.Count; i++)
            {
                var (name, colour, dashed, hasData) = legend[i];
                double ly = by + 4 + lineH * i + lineH / 2;
                svg.Append(CultureInfo.InvariantCulture,
                    $"<line x1=\"{F(bx + 6)}\" y1=\"{F(ly)}\" x2=\"{F(bx + 6 + sample)}\" y2=\"{F(ly)}\" stroke=\"{Escape(colour)}\" stroke-width=\"2\"{(dashed ? " stroke-dasharray=\"6 4\"" : "")}/>" +
                    $"<text x=\"{F(bx + 12 + sample)}\" y=\"{F(ly + 4)}\">{Escape(name)}{(hasData ? "" : " (no data)")}</text>\n");
            }
            svg.Append("</g>\n");
        }
        svg.Append("</g>\n");
    }

    /// <summary>A 1, 2 or 5 x 10^k step giving about five ticks over [lo, hi]; at least 1 when <paramref name="whole"/>.</summary>
    internal static double TickStep(double lo, double hi, bool whole)
    {
        double raw = (hi - lo) / 5;
        double magnitude = Math.Pow(10, Math.Floor(Math.Log10(raw)));
        double f = raw / magnitude;
        double step = (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * magnitude;
        return whole ? Math.Max(1, Math.Round(step)) : step;
    }

    /// <summary>The multiples of <paramref name="step"/> in [lo, hi] (allowing for rounding), never more than 100.</summary>
    private static IEnumerable<double> Ticks(double lo, double hi, double step)
    {
        double first = Math.Ceiling(lo / step - 1e-9);
        for (int k = 0; k < 100; k++)
        {
            double v = (first + k) * step;
            if (v > hi + step * 1e-9) yield break;
            yield return Math.Abs(v) < step * 1e-9 ? 0 : v;
        }
    }

    private static string Label(double value, double step)
    {
        int decimals = Math.Clamp(-(int)Math.Floor(Math.Log10(step) + 1e-9), 0, 12);
        double magnitude = Math.Abs(value);
        if (magnitude >= 1e6 || (magnitude > 0 && magnitude < 1e-4 && decimals > 6))
            return value.ToString("0.###e0", CultureInfo.InvariantCulture);
        return value.ToString("F" + decimals.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
    }

    private static string F(double v) => v.ToString("0.##", CultureInfo.InvariantCulture);

    /// <summary>Text safe inside an XML element or a double-quoted attribute.</summary>
    internal static string Escape(string text)
    {
        var sb = new StringBuilder(text.Length);
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            switch (c)
            {
                case '&': sb.Append("&amp;"); break;
                case '<': sb.Append("&lt;"); break;
                case '>': sb.Append("&gt;"); break;
                case '"': sb.Append("&quot;"); break;
                case '\'': sb.Append("&apos;"); break;
                default:
                    if (XmlConvert.IsXmlChar(c)) sb.Append(c);
                    else if (i + 1 < text.Length && XmlConvert.IsXmlSurrogatePair(text[i + 1], c)) { sb.Append(c).Append(text[i + 1]); i++; }
                    break;
            }
        }
        return sb.ToString();
    }
}
