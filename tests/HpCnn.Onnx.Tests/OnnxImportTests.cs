using Google.Protobuf;
using HpCnn.Layers;
using static HpCnn.Onnx.Tests.OnnxTestSupport;
using OnnxPb = global::Onnx;

namespace HpCnn.Onnx.Tests;

/// <summary>
/// Import of graphs written the way torch.onnx.export writes them (built here by hand, checked against ONNX Runtime), and
/// refusal of everything else: unsupported operators by node, hostile and corrupt files without a crash.
/// </summary>
public class OnnxImportTests
{
    /// <summary>A hand-made graph: input [N, C, H, W], nodes in order, initializers.</summary>
    private sealed class GraphMaker
    {
        public readonly OnnxPb.ModelProto Model = new() { IrVersion = 7 };
        private OnnxPb.GraphProto G => Model.Graph;
        public string Current = "input";
        private int _n;

        /// <summary><paramref name="inputDims"/>: [1, C, H, W] as written; the graph's batch dimension is symbolic.</summary>
        public GraphMaker(long opset, params long[] inputDims)
        {
            Model.Graph = new OnnxPb.GraphProto { Name = "g" };
            Model.OpsetImport.Add(new OnnxPb.OperatorSetIdProto { Version = opset });
            G.Input.Add(OnnxGraphBuilder.FloatValue("input", "N", inputDims[1..]));
        }

        public string Init(float[] v, params long[] dims)
        {
            var t = new OnnxPb.TensorProto { Name = $"w{G.Initializer.Count}", DataType = 1 };
            t.Dims.AddRange(dims);
            t.FloatData.AddRange(v); // typed field (the exporter writes raw_data): both must read
            G.Initializer.Add(t);
            return t.Name;
        }

        public string Ints(params long[] v)
        {
            var t = new OnnxPb.TensorProto { Name = $"i{G.Initializer.Count}", DataType = 7 };
            t.Dims.Add(v.Length);
            t.Int64Data.AddRange(v);
            G.Initializer.Add(t);
            return t.Name;
        }

        public OnnxPb.NodeProto Node(string op, string[] extraInputs, params OnnxPb.AttributeProto[] attrs)
        {
            var n = new OnnxPb.NodeProto { OpType = op, Name = $"{op}_{_n++}" };
            n.Input.Add(Current);
            n.Input.AddRange(extraInputs);
            n.Output.Add(n.Name + "_out");
            n.Attribute.AddRange(attrs);
            G.Node.Add(n);
            Current = n.Output[0];
            return n;
        }

        public byte[] Finish(params long[] outDims)
        {
            // The last node writes "output" (the name RunInOrt reads).
            if (G.Node.Count > 0 && G.Node[^1].Output[0] == Current) { G.Node[^1].Output[0] = "output"; Current = "output"; }
            G.Output.Add(OnnxGraphBuilder.FloatValue(Current, "N", outDims));
            return Model.ToByteArray();
        }
    }

    private static OnnxPb.AttributeProto I(string n, params long[] v) => OnnxGraphBuilder.Ints(n, v);

    private static void AssertImportMatchesOrt(byte[] onnx, Shape3 input, int batch = 3)
    {
        var m = OnnxImport.FromBytes(onnx);
        var x = RandomValues(batch * input.Size, 5, 2f);
        var expected = RunInOrt(onnx, x, input, batch);
        double err = RelativeError(expected, m.Predict(x).Probabilities);
        Assert.That(err, Is.LessThanOrEqualTo(1e-5), m.Summary());
    }

    private static string ImportError(byte[] onnx)
    {
        var e = Assert.Throws<InvalidDataException>(() => OnnxImport.FromBytes(onnx));
        return e!.Message;
    }

    [Test]
    public void PyTorchStyleChainImports([Values(11, 13, 17)] long opset)
    {
        // Pad + AveragePool (PyTorch 1.13's AvgPool2d with padding), Conv without bias, Clip with min/max inputs,
        // BatchNormalization, Reshape to [N, -1], MatMul + Add, Gemm with transB, Dropout/Identity no-ops.
        var g = new GraphMaker(opset, 1, 1, 9, 8);
        g.Node("Conv", [g.Init(RandomValues(4 * 9, 1), 4, 1, 3, 3)], I("kernel_shape", 3, 3), I("pads", 1, 1, 1, 1), I("strides", 1, 1));
        g.Node("BatchNormalization", [g.Init([1, 2, 0.5f, 1.5f], 4), g.Init([0.1f, -0.2f, 0.3f, 0], 4), g.Init([0.2f, 0, -0.1f, 0.4f], 4), g.Init([1, 0.5f, 2, 1.2f], 4)],
            OnnxGraphBuilder.Float("epsilon", 1e-5f), OnnxGraphBuilder.Float("momentum", 0.9f));
        g.Node("Clip", [g.Init([0f]), g.Init([6f])]);
        g.Node("Pad", [g.Ints(0, 0, 1, 1, 0, 0, 1, 1)]);
        g.Node("AveragePool", [], I("kernel_shape", 3, 3), I("strides", 2, 2), I("pads", 0, 0, 0, 0));
        g.Node("Dropout", []);
        g.Node("Reshape", [g.Ints(-1, 4 * 5 * 4)]);
        g.Node("MatMul", [g.Init(RandomValues(80 * 6, 2), 80, 6)]);
        g.Node("Add", [g.Init(RandomValues(6, 3), 6)]);
        g.Node("Relu", []);
        g.Node("Identity", []);
        g.Node("Gemm", [g.Init(RandomValues(3 * 6, 4), 3, 6), g.Init(RandomValues(3, 5), 3)], OnnxGraphBuilder.Int("transB", 1));
        g.Node("Softmax", [], OnnxGraphBuilder.Int("axis", 1));
        var bytes = g.Finish(3);
        AssertImportMatchesOrt(bytes, new Shape3(1, 9, 8));
        var m = OnnxImport.FromBytes(bytes);
        Assert.That(m.Layers.Select(l => l.Kind), Is.EqualTo(new[] { "conv2d", "batchnorm2d", "relu", "avgpool2d", "flatten", "dense", "relu", "dense", "softmax" }));
        Assert.That(((ReLU)m.Layers[2]).Cap, Is.EqualTo(6f));
        Assert.That(((AvgPool2D)m.Layers[3]).Padding, Is.EqualTo(Padding.Explicit(1, 1, 1, 1)));
    }

    [Test]
    public void OldOpsetClipAttributesAndAutoPadImport()
    {
        var g = new GraphMaker(9, 1, 2, 7, 7);
        var conv = g.Node("Conv", [g.Init(RandomValues(3 * 2 * 4, 6), 3, 2, 2, 2), g.Init([0.1f, 0.2f, 0.3f], 3)], I("strides", 2, 2));
        conv.Attribute.Add(new OnnxPb.AttributeProto { Name = "auto_pad", Type = OnnxPb.AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8("SAME_UPPER") });
        g.Node("Clip", [], OnnxGraphBuilder.Float("min", 0), OnnxGraphBuilder.Float("max", 0.5f));
        g.Node("MaxPool", [], I("kernel_shape", 2, 2), I("strides", 1, 1), I("pads", 1, 1, 0, 0));
        g.Node("Flatten", []);
        AssertImportMatchesOrt(g.Finish(3 * 4 * 4), new Shape3(2, 7, 7));
    }

    [Test]
    public void UnsupportedOperatorsAreNamedByNode()
    {
        var g = new GraphMaker(13, 1, 1, 4, 4);
        g.Node("Relu", []);
        g.Node("Elu", []);
        Assert.That(ImportError(g.Finish(1, 4, 4)), Does.StartWith("node 1 'Elu_1' (Elu): operator Elu is not supported"));

        var r = new GraphMaker(13, 1, 1, 4, 4);
        r.Node("Relu", []);
        string skip = r.Current;
        r.Node("Sigmoid", []);
        r.Node("Add", [skip]);
        Assert.That(ImportError(r.Finish(1, 4, 4)), Does.Contain("feeds 2 nodes").And.Contain("residual connections are not supported"));

        var c = new GraphMaker(13, 1, 1, 4, 4);
        c.Node("Clip", [c.Init([-1f]), c.Init([1f])]);
        Assert.That(ImportError(c.Finish(1, 4, 4)), Does.Contain("(Clip): Clip(min -1, max 1) is not supported"));

        var grouped = new GraphMaker(13, 1, 2, 4, 4);
        grouped.Node("Conv", [grouped.Init(RandomValues(2 * 9, 1), 2, 1, 3, 3)], OnnxGraphBuilder.Int("group", 2));
        Assert.That(ImportError(grouped.Finish(2, 2, 2)), Does.Contain("(Conv): grouped convolution"));

        var avg = new GraphMaker(13, 1, 1, 4, 4);
        avg.Node("AveragePool", [], I("kernel_shape", 2, 2), I("pads", 1, 1, 1, 1));
        Assert.That(ImportError(avg.Finish(1, 3, 3)), Does.Contain("count_include_pad=0"));
    }

    /// <summary>Attribute values a layer refuses are refused with the layer's own rule (its constructor), naming the node.</summary>
    [Test]
    public void AttributeValuesAreCheckedByTheLayersRule()
    {
        var leaky = new GraphMaker(13, 1, 1, 4, 4);
        leaky.Node("LeakyRelu", [], OnnxGraphBuilder.Float("alpha", 1.5f));
        Assert.That(ImportError(leaky.Finish(1, 4, 4)), Is.EqualTo("node 0 'LeakyRelu_0' (LeakyRelu): leakyrelu: alpha must be in [0, 1), got 1.5"));

        var norm = new GraphMaker(13, 1, 2, 4, 4);
        norm.Node("InstanceNormalization", [norm.Init([1f, 1f], 2), norm.Init([0f, 0f], 2)], OnnxGraphBuilder.Float("epsilon", -1f));
        Assert.That(ImportError(norm.Finish(2, 4, 4)), Does.EndWith("(InstanceNormalization): featuremapnorm: epsilon must be positive, got -1"));

        var bn = new GraphMaker(13, 1, 1, 4, 4);
        string[] stats = [bn.Init([1f], 1), bn.Init([0f], 1), bn.Init([0f], 1), bn.Init([1f], 1)];
        bn.Node("BatchNormalization", stats, OnnxGraphBuilder.Float("momentum", 1.5f));
        Assert.That(ImportError(bn.Finish(1, 4, 4)), Does.Contain("(BatchNormalization): batchnorm2d: momentum must be in [0, 1], got -0.5 (from ONNX momentum 1.5,"));
    }

    [Test]
    public void GeometryNoRealNetworkHasIsRefusedByNode()
    {
        // Pooling padding above half the window (PyTorch's rule), convolution padding of the kernel size, a window
        // larger than the padded input: refused as in every other door, naming the node.
        var pool = new GraphMaker(13, 1, 1, 8, 8);
        pool.Node("MaxPool", [], I("kernel_shape", 4, 4), I("strides", 1, 1), I("pads", 3, 3, 3, 3));
        Assert.That(ImportError(pool.Finish(1, 11, 11)), Does.Contain("(MaxPool)").And.Contain("at most half the 4x4 window"));
        var conv = new GraphMaker(13, 1, 1, 8, 8);
        conv.Node("Conv", [conv.Init(RandomValues(9, 1), 1, 1, 3, 3)], I("kernel_shape", 3, 3), I("pads", 3, 3, 3, 3));
        Assert.That(ImportError(conv.Finish(1, 12, 12)), Does.Contain("(Conv)").And.Contain("smaller than the 3x3 kernel"));
        var wide = new GraphMaker(13, 1, 1, 8, 8);
        wide.Node("MaxPool", [], I("kernel_shape", 12, 12), I("pads", 1, 1, 1, 1));
        Assert.That(ImportError(wide.Finish(1, 1, 1)), Does.Contain("(MaxPool)").And.Contain("does not fit the 8x8 input"));
    }

    [Test]
    public void MissingInitializersCyclesAndExternalDataAreRefused()
    {
        var missing = new GraphMaker(13, 1, 1, 4, 4);
        missing.Node("Conv", ["nowhere"]);
        Assert.That(ImportError(missing.Finish(1, 2, 2)), Does.Contain("input 'nowhere' is missing"));

        // a -> b -> a: the chain from the input never reaches the output.
        var cyc = new GraphMaker(13, 1, 1, 4, 4);
        var n1 = cyc.Node("Relu", []);
        var n2 = cyc.Node("Sigmoid", []);
        n1.Input.Add(n2.Output[0]);
        Assert.That(() => OnnxImport.FromBytes(cyc.Finish(1, 4, 4)), Throws.InstanceOf<InvalidDataException>());
        // A cycle beside the chain: x = Relu(y), y = Sigmoid(x).
        var loop = new GraphMaker(13, 1, 1, 4, 4);
        loop.Node("Relu", []);
        var bytes = loop.Finish(1, 4, 4);
        var withCycle = OnnxPb.ModelProto.Parser.ParseFrom(bytes);
        var x = new OnnxPb.NodeProto { OpType = "Relu", Name = "x" };
        x.Input.Add("y"); x.Output.Add("x");
        var y = new OnnxPb.NodeProto { OpType = "Sigmoid", Name = "y" };
        y.Input.Add("x"); y.Output.Add("y");
        withCycle.Graph.Node.Add(x);
        withCycle.Graph.Node.Add(y);
        Assert.That(ImportError(withCycle.ToByteArray()), Does.Contain("'x' (Relu): is not on the chain"));

        var ext = new GraphMaker(13, 1, 1, 4, 4);
        ext.Node("Conv", [ext.Init([], 1, 1, 3, 3)]);
        var w = ext.Model.Graph.Initializer[0];
        w.DataLocation = OnnxPb.TensorProto.Types.DataLocation.External;
        w.ExternalData.Add(new OnnxPb.StringStringEntryProto { Key = "location", Value = "weights.bin" });
        Assert.That(ImportError(ext.Finish(1, 2, 2)), Does.Contain("external file"));
    }

    [Test]
    public void AbsurdSizesAreRefusedBeforeAllocating()
    {
        // Dimensions whose product overflows, and a weight that claims far more values than it holds.
        var huge = new GraphMaker(13, 1, 1, 4, 4);
        huge.Node("Conv", [huge.Init([1f], long.MaxValue / 2, 4, 1, 1)]);
        Assert.That(ImportError(huge.Finish(1, 4, 4)), Does.Contain("hold more than"));
        var lying = new GraphMaker(13, 1, 1, 4, 4);
        lying.Node("Conv", [lying.Init([1f, 2f], 1000, 1, 3, 3)]);
        Assert.That(ImportError(lying.Finish(1, 2, 2)), Does.Contain("values in float_data"));
        var big = new GraphMaker(13, 1, 1, 3000, 3000);
        big.Node("Conv", [big.Init(RandomValues(16 * 49, 1), 16, 1, 7, 7)]);
        Assert.That(ImportError(big.Finish(16, 2994, 2994)), Does.Contain("compute budget"));
        var wide = new GraphMaker(13, 1, 1, 60000, 60000);
        wide.Node("Relu", []);
        Assert.That(ImportError(wide.Finish(1, 60000, 60000)), Does.Contain("too large"));
    }

    [Test]
    public void CorruptAndMutatedFilesFailCleanly()
    {
        var good = OnnxExport.ToBytes(RandomNetwork(3));
        Assert.That(ImportError([1, 2, 3, 4, 5]), Does.Contain("ONNX"));
        var rng = new Random(1);
        int cases = int.TryParse(Environment.GetEnvironmentVariable("HPCNN_ONNX_FUZZ_CASES"), out int n) ? n : 10000;
        int accepted = 0;
        for (int i = 0; i < cases; i++)
        {
            var b = (byte[])good.Clone();
            switch (i % 3)
            {
                case 0: b = b.AsSpan(0, rng.Next(b.Length)).ToArray(); break;
                case 1: for (int k = 0, m = 1 + rng.Next(8); k < m; k++) b[rng.Next(b.Length)] = (byte)rng.Next(256); break;
                default: for (int k = 0, m = 1 + rng.Next(4); k < m; k++) b[rng.Next(b.Length)] ^= (byte)(1 << rng.Next(8)); break;
            }
            try
            {
                var model = OnnxImport.FromBytes(b);
                accepted++;
                if (model.InputShape.Size <= 1 << 20) model.Predict(new float[model.InputShape.Size]); // a file that loads must also run
            }
            catch (InvalidDataException) { }
            catch (Exception e)
            {
                Assert.Fail($"case {i}: {e.GetType().Name}: {e.Message}");
            }
        }
        TestContext.Out.WriteLine($"{cases} mutated files, {accepted} still loaded");
    }

    [Test]
    public void StructurallyMutatedGraphsFailCleanly()
    {
        // Byte flips mostly land in weights; these change what the importer reasons about: dimensions, attributes,
        // operator types, tensor names, node order.
        var pristine = OnnxExport.Build(RandomNetwork(5), new());
        var rng = new Random(2);
        long[] odd = [0, -1, 1, 2, 3, 7, 1 << 20, int.MaxValue, long.MaxValue, long.MinValue];
        string[] ops = ["Conv", "Gemm", "MatMul", "Add", "Relu", "Clip", "MaxPool", "AveragePool", "Pad", "Reshape", "Flatten", "Softmax", "Shape", "Constant", "Elu"];
        int cases = int.TryParse(Environment.GetEnvironmentVariable("HPCNN_ONNX_FUZZ_CASES"), out int n) ? n / 4 : 2500;
        for (int i = 0; i < cases; i++)
        {
            var m = pristine.Clone();
            var g = m.Graph;
            for (int k = 0, edits = 1 + rng.Next(3); k < edits; k++)
            {
                var node = g.Node[rng.Next(g.Node.Count)];
                switch (rng.Next(7))
                {
                    case 0 when g.Initializer.Count > 0:
                        {
                            var t = g.Initializer[rng.Next(g.Initializer.Count)];
                            if (t.Dims.Count > 0) t.Dims[rng.Next(t.Dims.Count)] = odd[rng.Next(odd.Length)];
                            break;
                        }
                    case 1 when node.Attribute.Count > 0:
                        {
                            var a = node.Attribute[rng.Next(node.Attribute.Count)];
                            if (a.Ints.Count > 0) a.Ints[rng.Next(a.Ints.Count)] = odd[rng.Next(odd.Length)];
                            else { a.I = odd[rng.Next(odd.Length)]; a.F = (float)odd[rng.Next(odd.Length)]; }
                            break;
                        }
                    case 2:
                        node.OpType = ops[rng.Next(ops.Length)];
                        break;
                    case 3:
                        node.Input[rng.Next(node.Input.Count)] = g.Node[rng.Next(g.Node.Count)].Output[0];
                        break;
                    case 4:
                        {
                            int from = rng.Next(g.Node.Count);
                            var moved = g.Node[from];
                            g.Node.RemoveAt(from);
                            g.Node.Insert(rng.Next(g.Node.Count + 1), moved);
                        }
                        break;
                    case 5:
                        var d = g.Input[0].Type.TensorType.Shape.Dim;
                        d[rng.Next(d.Count)].DimValue = odd[rng.Next(odd.Length)];
                        break;
                    default:
                        if (node.Input.Count > 1) node.Input.RemoveAt(rng.Next(1, node.Input.Count));
                        break;
                }
            }
            try
            {
                var model = OnnxImport.FromBytes(m.ToByteArray());
                if (model.InputShape.Size <= 1 << 20) model.Predict(new float[model.InputShape.Size]);
            }
            catch (InvalidDataException) { }
            catch (Exception e)
            {
                Assert.Fail($"case {i}: {e.GetType().Name}: {e.Message}\n{e.StackTrace}");
            }
        }
    }
}
