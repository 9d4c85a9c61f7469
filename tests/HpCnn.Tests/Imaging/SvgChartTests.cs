using System.Text.RegularExpressions;
using System.Xml.Linq;
using HpCnn.Imaging;

namespace HpCnn.Tests.Imaging;

public class SvgChartTests
{
    private static readonly XNamespace Svg = "http://www.w3.org/2000/svg";

    private static XDocument Parse(string svg) => XDocument.Parse(svg);

    private static List<XElement> Paths(XDocument doc) => doc.Descendants(Svg + "path").ToList();

    private static List<string> Texts(XDocument doc) => doc.Descendants(Svg + "text").Select(t => t.Value).ToList();

    [Test]
    public void TrainingCurvesAreAValidSvgWithOnePathPerSeries()
    {
        double[] trainLoss = [2.3, 1.1, 0.7, 0.5, 0.42], valLoss = [2.0, 1.0, 0.8, 0.7, 0.69];
        double[] trainAcc = [0.3, 0.6, 0.75, 0.82, 0.86], valAcc = [0.35, 0.62, 0.72, 0.78, 0.8];

        var doc = Parse(SvgChart.TrainingCurves(trainLoss, valLoss, trainAcc, valAcc, "Fashion-MNIST"));

        Assert.That(doc.Root!.Name, Is.EqualTo(Svg + "svg"));
        var panels = doc.Root.Elements(Svg + "g").ToList();
        Assert.That(panels, Has.Count.EqualTo(2));
        foreach (var panel in panels)
        {
            var series = panel.Descendants(Svg + "path").Select(p => (string?)p.Attribute("data-series")).ToList();
            Assert.That(series, Is.EqualTo(new[] { "train", "validation" }));
            var legend = panel.Descendants(Svg + "text").Select(t => t.Value).ToList();
            Assert.That(legend, Does.Contain("train").And.Contain("validation"));
        }
        Assert.That(Texts(doc), Does.Contain("Fashion-MNIST").And.Contain("Loss").And.Contain("Accuracy").And.Contain("epoch"));
        // Every path holds as many points as its series, in plain invariant numbers.
        foreach (var path in Paths(doc))
        {
            string d = (string)path.Attribute("d")!;
            Assert.That(d, Does.Match(@"^M[0-9.\-]+ [0-9.\-]+( L[0-9.\-]+ [0-9.\-]+){4}$"));
        }
        Assert.That(Paths(doc).Count(p => (string?)p.Attribute("stroke-dasharray") is not null), Is.EqualTo(2), "validation is dashed");

        // The legend keeps off the lines: top right over falling loss, bottom right under rising accuracy.
        double LegendY(XElement panel) => double.Parse(panel.Descendants(Svg + "g").Single().Element(Svg + "rect")!.Attribute("y")!.Value,
            System.Globalization.CultureInfo.InvariantCulture);
        const double plotMiddle = 36 + 32 + 244 / 2.0;
        Assert.That(LegendY(panels[0]), Is.LessThan(plotMiddle));
        Assert.That(LegendY(panels[1]), Is.GreaterThan(plotMiddle));
    }

    [Test]
    public void MapsDataToThePlotArea()
    {
        // One 480x320 panel under a title: the plot spans x 64..464 and y 68 (top) .. 312 (bottom).
        var panel = new ChartPanel("p", [new ChartSeries("s", [0, 1])]) { YMin = 0, YMax = 1 };
        var doc = Parse(SvgChart.Render("t", [panel]));
        Assert.That((string)Paths(doc).Single().Attribute("d")!, Is.EqualTo("M64 312 L464 68"));
        Assert.That(doc.Root!.Attribute("width")!.Value, Is.EqualTo("480"));
        Assert.That(doc.Root!.Attribute("height")!.Value, Is.EqualTo("356"));
        Assert.That(Texts(doc), Is.SupersetOf(new[] { "0.0", "0.2", "0.4", "0.6", "0.8", "1.0" }), "y ticks");
        Assert.That(Texts(doc), Is.SupersetOf(new[] { "1", "2" }).And.No.Contain("1.5"), "whole epochs only");
    }

    [Test]
    public void MissingValuesBreakTheLine()
    {
        var panel = new ChartPanel("gaps", [new ChartSeries("s", [1, double.NaN, 3, 4, double.PositiveInfinity, 6])]);
        var doc = Parse(SvgChart.Render("", [panel]));
        string d = (string)Paths(doc).Single().Attribute("d")!;
        Assert.That(Regex.Count(d, "M"), Is.EqualTo(3), d);
        Assert.That(Regex.Count(d, "L"), Is.EqualTo(1), d);
        Assert.That(doc.Descendants(Svg + "circle").Count(), Is.EqualTo(4), "a marker on every drawable point");
        Assert.That(d, Does.Not.Contain("NaN").And.Not.Contain("Infinity"));
    }

    [Test]
    public void LongSeriesMarkOnlyIsolatedPoints()
    {
        var values = Enumerable.Range(0, 100).Select(i => i == 50 || i == 52 ? double.NaN : 1.0 / (i + 1)).ToArray();
        var doc = Parse(SvgChart.Render("", [new ChartPanel("long", [new ChartSeries("loss", values)])]));
        Assert.That(doc.Descendants(Svg + "circle").Count(), Is.EqualTo(1), "point 51 sits between two gaps");
        Assert.That(Texts(doc), Does.Contain("100").And.Contain("20"));
    }

    [Test]
    public void SeriesWithoutDataAndEmptyPanelsStillRender()
    {
        var panels = new[]
        {
            new ChartPanel("a", [new ChartSeries("real", [0.5, 0.4]), new ChartSeries("nothing", [double.NaN, double.NaN])]),
            new ChartPanel("b", []),
            new ChartPanel("c", [new ChartSeries("flat", [2, 2, 2])]),
            new ChartPanel("d", [new ChartSeries("one", [7])]),
        };
        var doc = Parse(SvgChart.Render("title", panels, columns: 2));
        Assert.That(Paths(doc).Select(p => (string?)p.Attribute("data-series")), Is.EqualTo(new[] { "real", "flat", "one" }));
        Assert.That(Texts(doc), Does.Contain("nothing (no data)").And.Contain("no data"));
        Assert.That(doc.Root!.Attribute("height")!.Value, Is.EqualTo((36 + 2 * 320).ToString()));
        Assert.That(doc.Root!.Attribute("width")!.Value, Is.EqualTo("960"));
    }

    [Test]
    public void EscapesText()
    {
        const string name = "loss <train> & \"val\" 'x' \u0001\U0001F600";
        var panel = new ChartPanel("a & b", [new ChartSeries(name, [1, 2]) { Color = "#123456\"" }]) { YLabel = "<y>" };
        var doc = Parse(SvgChart.Render("<title>", [panel]));
        Assert.That((string?)Paths(doc).Single().Attribute("data-series"), Is.EqualTo("loss <train> & \"val\" 'x' \U0001F600"));
        Assert.That(Texts(doc), Does.Contain("<title>").And.Contain("a & b").And.Contain("<y>"));
    }

    [Test]
    public void ExplicitXCoordinatesAndArgumentChecks()
    {
        var series = new ChartSeries("val", [0.9, 0.8]) { X = [0.5, 2.5] };
        var doc = Parse(SvgChart.Render("", [new ChartPanel("x", [series])]));
        Assert.That(Texts(doc), Does.Contain("0.5").Or.Contain("1.0"), "fractional x gets fractional ticks");

        Assert.Throws<ArgumentException>(() => SvgChart.Render("", [new ChartPanel("x", [new ChartSeries("s", [1, 2]) { X = [1] }])]));
        Assert.Throws<ArgumentException>(() => SvgChart.Render("", [new ChartPanel("x", [new ChartSeries("s", [1])]) { YMin = 1, YMax = 1 }]));
        Assert.Throws<ArgumentException>(() => SvgChart.Render("", []));
        Assert.Throws<ArgumentException>(() => SvgChart.Render("", [new ChartPanel("x", [])], panelWidth: 10));
    }

    [Test]
    public void WritesAFile()
    {
        string path = Path.Combine(Path.GetTempPath(), $"hpcnn-chart-{Guid.NewGuid():N}.svg");
        try
        {
            SvgChart.Write(path, "t", [new ChartPanel("p", [new ChartSeries("s", [1, 2, 3])])]);
            Assert.That(XDocument.Load(path).Root!.Name, Is.EqualTo(Svg + "svg"));
        }
        finally
        {
            File.Delete(path);
        }
    }
}
