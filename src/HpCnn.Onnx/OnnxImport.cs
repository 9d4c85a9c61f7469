using System.Globalization;
using System.Text.Json;
using Google.Protobuf;
using HpCnn.IO;
using HpCnn.Layers;
using OnnxPb = global::Onnx;

namespace HpCnn.Onnx;

/// <summary>
/// Reads an ONNX model that is a chain of the operators HpCnn has (as <c>torch.onnx.export</c> writes them, opsets 7-21)
/// into a <see cref="Sequential"/>. Anything else is refused with an <see cref="InvalidDataException"/> that names the
/// node, its operator and what is unsupported; the file is untrusted input (every size is checked before anything is
/// allocated, and the network must fit the compute budget).
/// </summary>
public static class OnnxImport
{
    /// <summary>Largest ONNX file read (the protobuf format's own limit is 2 GiB).</summary>
    public const long MaxFileBytes = 1L << 30;
    /// <summary>Largest number of nodes in a graph.</summary>
    public const int MaxNodes = 10_000;
    private const long MaxTensorValues = 1L << 28;

    /// <summary>Reads the ONNX file at <paramref name="path"/> (see <see cref="FromBytes"/>).</summary>
    public static Sequential Load(string path, long maxFlopsPerImage = ComputeBudget.DefaultFlopsPerImage)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (Directory.Exists(path)) throw new FileNotFoundException($"{path} is a directory, not an ONNX file", path);
        if (!File.Exists(path)) throw new FileNotFoundException($"ONNX file not found: {path}", path);
        long length = new FileInfo(path).Length;
        if (length > MaxFileBytes) throw new InvalidDataException($"{path}: {length} bytes is larger than the {MaxFileBytes >> 20} MiB an ONNX import reads");
        try
        {
            return FromBytes(File.ReadAllBytes(path), maxFlopsPerImage);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"{path}: {e.Message}", e);
        }
    }

    /// <summary>
    /// Builds a model from the bytes of an ONNX file. The model is not compiled (compile it to fit); a trailing Softmax or
    /// Sigmoid stays a layer. HpCnn metadata an export wrote (metadata_props "hpcnn_metadata") becomes the model's metadata.
    /// </summary>
    public static Sequential FromBytes(byte[] bytes, long maxFlopsPerImage = ComputeBudget.DefaultFlopsPerImage)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        long flopBudget = ComputeBudget.Resolve(maxFlopsPerImage);
        if (bytes.Length > MaxFileBytes) throw new InvalidDataException($"{bytes.Length} bytes is larger than the {MaxFileBytes >> 20} MiB an ONNX import reads");
        OnnxPb.ModelProto m;
        try
        {
            m = OnnxPb.ModelProto.Parser.ParseFrom(bytes);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new InvalidDataException($"not a valid ONNX file (protobuf: {e.Message})", e);
        }
        return new Importer(m, flopBudget).Run();
    }

    private sealed class Importer(OnnxPb.ModelProto model, long flopBudget)
    {
        private readonly Dictionary<string, OnnxPb.TensorProto> _constants = new(StringComparer.Ordinal);
        private OnnxPb.GraphProto _graph = null!;
        private long _opset;
        private Sequential _seq = null!;
        private long _flops;
        private int _rank;
        private long? _fixedBatch;
        private Data.Standardization? _standardization;

        public Sequential Run()
        {
            _graph = model.Graph ?? throw new InvalidDataException("the ONNX model has no graph");
            _opset = DefaultOpset();
            if (_graph.Node.Count > MaxNodes) throw new InvalidDataException($"the graph has {_graph.Node.Count} nodes, more than the limit of {MaxNodes}");
            foreach (var t in _graph.Initializer)
            {
                if (string.IsNullOrEmpty(t.Name)) throw new InvalidDataException("an initializer has no name");
                if (!_constants.TryAdd(t.Name, t)) throw new InvalidDataException($"initializer '{t.Name}' is defined twice");
            }
            if (_graph.SparseInitializer.Count > 0) throw new InvalidDataException("sparse initializers are not supported");

            // Producers: every tensor has at most one; Constant nodes become constants.
            var producer = new Dictionary<string, int>(StringComparer.Ordinal);
            for (int i = 0; i < _graph.Node.Count; i++)
            {
                var n = _graph.Node[i];
                foreach (var o in n.Output)
                {
                    if (o.Length == 0) continue;
                    if (_constants.ContainsKey(o) || !producer.TryAdd(o, i))
                        throw new InvalidDataException($"{NodeLabel(i)}: tensor '{o}' is produced twice");
                }
            }
            for (int i = 0; i < _graph.Node.Count; i++)
                if (_graph.Node[i].OpType == "Constant" && IsDefaultDomain(_graph.Node[i])) ReadConstantNode(i);
            EvaluateShapeNodes();

            var input = GraphInput();
            if (_graph.Output.Count != 1) throw new InvalidDataException($"the graph has {_graph.Output.Count} outputs; HpCnn imports graphs with one output");
            string outputName = _graph.Output[0].Name;

            var chain = Walk(input, outputName, producer);
            Translate(chain);
            if (_seq.Layers.Count == 0) throw new InvalidDataException("the graph has no operation that maps to an HpCnn layer");
            _seq.ParameterBudget = long.MaxValue;
            ApplyMetadata();
            return _seq;
        }

        private long DefaultOpset()
        {
            long opset = -1;
            foreach (var o in model.OpsetImport)
                if (o.Domain is "" or "ai.onnx") opset = o.Version;
            if (opset < 0) throw new InvalidDataException("the model imports no version of the default ONNX operator set");
            if (opset < 7 || opset > 21) throw new InvalidDataException($"operator set version {opset} is not supported (7 to 21 are)");
            return opset;
        }

        private static bool IsDefaultDomain(OnnxPb.NodeProto n) => n.Domain is "" or "ai.onnx";

        /// <summary>Nodes beside the chain: constants, and the shape computations evaluated into constants.</summary>
        private readonly HashSet<int> _shapeNodes = [];
        private bool IsSideNode(int i) => _shapeNodes.Contains(i) || (_graph.Node[i].OpType == "Constant" && IsDefaultDomain(_graph.Node[i]));

        /// <summary>Stands for the batch size in an evaluated Shape (a Reshape to [it, -1] is a flatten); other dimensions are unknown.</summary>
        internal const long BatchDim = long.MinValue, UnknownDim = long.MinValue + 1;

        /// <summary>
        /// The shape arithmetic of <c>x.view(x.size(0), -1)</c> with a dynamic batch (Shape, Gather, Unsqueeze, Concat),
        /// evaluated into int64 constants: a Shape gives [batch, ?, ?, ?], where only the batch may reach a Reshape.
        /// </summary>
        private void EvaluateShapeNodes()
        {
            for (bool progress = true; progress;)
            {
                progress = false;
                for (int i = 0; i < _graph.Node.Count; i++)
                {
                    var n = _graph.Node[i];
                    if (_shapeNodes.Contains(i) || !IsDefaultDomain(n) || n.Output.Count != 1 || n.OpType is not ("Shape" or "Gather" or "Unsqueeze" or "Concat")) continue;
                    long[]? v = null;
                    bool Known(int k) => k < n.Input.Count && _constants.ContainsKey(n.Input[k]);
                    long[] Values(int k) => OnnxTensors.Int64s(_constants[n.Input[k]], 64, $"{NodeLabel(i)}: input '{n.Input[k]}'");
                    switch (n.OpType)
                    {
                        case "Shape" when n.Input.Count == 1 && n.Attribute.Count == 0 && !Known(0):
                            v = [BatchDim, UnknownDim, UnknownDim, UnknownDim];
                            break;
                        case "Gather" when Known(0) && Known(1) && (IntAttr(n, "axis") ?? 0) == 0:
                            {
                                var data = Values(0);
                                v = Values(1).Select(k => k >= 0 && k < data.Length ? data[k] : throw new InvalidDataException($"{NodeLabel(i)}: index {k} outside the {data.Length} values")).ToArray();
                                break;
                            }
                        case "Unsqueeze" when Known(0) && (_opset < 13 || Known(1)):
                            v = Values(0);
                            break;
                        case "Concat" when n.Input.Count > 0 && Enumerable.Range(0, n.Input.Count).All(Known) && (IntAttr(n, "axis") ?? 0) == 0:
                            v = Enumerable.Range(0, n.Input.Count).SelectMany(Values).ToArray();
                            if (v.Length > 8) throw new InvalidDataException($"{NodeLabel(i)}: a shape of {v.Length} dimensions");
                            break;
                    }
                    if (v is null) continue;
                    var t = new OnnxPb.TensorProto { DataType = (int)OnnxPb.TensorProto.Types.DataType.Int64 };
                    t.Dims.Add(v.Length);
                    t.Int64Data.AddRange(v);
                    _constants[n.Output[0]] = t;
                    _shapeNodes.Add(i);
                    progress = true;
                }
            }
        }

        private string NodeLabel(int i)
        {
            var n = _graph.Node[i];
            return $"node {i}{(string.IsNullOrEmpty(n.Name) ? "" : $" '{n.Name}'")} ({n.OpType})";
        }

        private void ReadConstantNode(int i)
        {
            var n = _graph.Node[i];
            if (n.Output.Count != 1) throw new InvalidDataException($"{NodeLabel(i)}: expected one output");
            if (n.Attribute.Count != 1) throw new InvalidDataException($"{NodeLabel(i)}: expected exactly one value attribute");
            var a = n.Attribute[0];
            OnnxPb.TensorProto t;
            switch (a.Name)
            {
                case "value":
                    t = a.T ?? throw new InvalidDataException($"{NodeLabel(i)}: attribute 'value' holds no tensor");
                    break;
                case "value_float":
                    t = new OnnxPb.TensorProto { DataType = (int)OnnxPb.TensorProto.Types.DataType.Float };
                    t.FloatData.Add(a.F);
                    break;
                case "value_floats":
                    t = new OnnxPb.TensorProto { DataType = (int)OnnxPb.TensorProto.Types.DataType.Float };
                    t.Dims.Add(a.Floats.Count);
                    t.FloatData.AddRange(a.Floats);
                    break;
                case "value_int":
                    t = new OnnxPb.TensorProto { DataType = (int)OnnxPb.TensorProto.Types.DataType.Int64 };
                    t.Int64Data.Add(a.I);
                    break;
                case "value_ints":
                    t = new OnnxPb.TensorProto { DataType = (int)OnnxPb.TensorProto.Types.DataType.Int64 };
                    t.Dims.Add(a.Ints.Count);
                    t.Int64Data.AddRange(a.Ints);
                    break;
                default:
                    throw new InvalidDataException($"{NodeLabel(i)}: constant attribute '{a.Name}' is not supported");
            }
            _constants[n.Output[0]] = t;
        }

        /// <summary>The one graph input that is not an initializer, checked: float, [N, C, H, W] or [N, features].</summary>
        private string GraphInput()
        {
            var inputs = _graph.Input.Where(v => !_constants.ContainsKey(v.Name)).ToList();
            if (inputs.Count != 1)
                throw new InvalidDataException($"the graph has {inputs.Count} inputs that are not initializers ({string.Join(", ", inputs.Select(v => $"'{v.Name}'"))}); HpCnn imports graphs with one input");
            var v = inputs[0];
            string what = $"graph input '{v.Name}'";
            var tt = v.Type?.TensorType ?? throw new InvalidDataException($"{what}: not a tensor");
            if (tt.ElemType != (int)OnnxPb.TensorProto.Types.DataType.Float)
                throw new InvalidDataException($"{what}: element type {OnnxTensors.TypeName(tt.ElemType)}, expected FLOAT");
            var dims = tt.Shape?.Dim ?? throw new InvalidDataException($"{what}: no shape (HpCnn needs the input's channels, height and width)");
            if (dims.Count is not (4 or 2)) throw new InvalidDataException($"{what}: {dims.Count} dimensions; expected [batch, channels, height, width] or [batch, features]");
            if (dims[0].ValueCase == OnnxPb.TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue)
            {
                if (dims[0].DimValue < 1) throw new InvalidDataException($"{what}: batch dimension {dims[0].DimValue}");
                _fixedBatch = dims[0].DimValue;
            }
            var sizes = new int[dims.Count - 1];
            for (int d = 1; d < dims.Count; d++)
            {
                if (dims[d].ValueCase != OnnxPb.TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue)
                    throw new InvalidDataException($"{what}: dimension {d} is symbolic ('{dims[d].DimParam}'); HpCnn needs a fixed image size");
                long s = dims[d].DimValue;
                if (s < 1 || s > NetworkSpec.MaxDimension) throw new InvalidDataException($"{what}: dimension {d} is {s} (must be 1..{NetworkSpec.MaxDimension})");
                sizes[d - 1] = (int)s;
            }
            var shape = sizes.Length == 3 ? new Shape3(sizes[0], sizes[1], sizes[2]) : Shape3.Flat(sizes[0]);
            if ((long)shape.C * shape.H * shape.W > 1L << 28) throw new InvalidDataException($"{what}: {shape} is too large");
            _rank = dims.Count;
            _seq = new Sequential(shape) { ParameterBudget = Math.Max(1, model.CalculateSize() / 4) + 1 };
            return v.Name;
        }

        /// <summary>The nodes from the input to the output, each consuming the one before: anything else (branches, cycles, loose nodes) is refused.</summary>
        private List<int> Walk(string input, string output, Dictionary<string, int> producer)
        {
            var consumers = new Dictionary<string, List<int>>(StringComparer.Ordinal);
            for (int i = 0; i < _graph.Node.Count; i++)
            {
                var n = _graph.Node[i];
                if (IsSideNode(i)) continue;
                foreach (var name in n.Input.Distinct())
                {
                    if (name.Length == 0 || _constants.ContainsKey(name)) continue;
                    if (!consumers.TryGetValue(name, out var list)) consumers[name] = list = [];
                    list.Add(i);
                }
            }
            var chain = new List<int>();
            var visited = new HashSet<int>();
            string current = input;
            while (true)
            {
                consumers.TryGetValue(current, out var next);
                if (current == output)
                {
                    if (next is { Count: > 0 }) throw new InvalidDataException($"{NodeLabel(next[0])}: reads the graph output '{output}'; graph outputs must be the last tensor of the chain");
                    break;
                }
                if (next is null || next.Count == 0)
                    throw new InvalidDataException($"tensor '{current}' is used by no node and is not the graph output '{output}' (the graph must be a chain from its input to its output)");
                if (next.Count > 1)
                {
                    string nodes = string.Join(", ", next.Select(NodeLabel));
                    string hint = next.Any(i => _graph.Node[i].OpType == "Shape")
                        ? " (of shapes computed at run time only [batch, -1], as x.view(x.size(0), -1) exports, is supported: use torch.flatten(x, 1) or nn.Flatten)"
                        : " (branches and residual connections are not supported yet)";
                    throw new InvalidDataException($"tensor '{current}' feeds {next.Count} nodes: {nodes}{hint}");
                }
                int ni = next[0];
                if (!visited.Add(ni)) throw new InvalidDataException($"{NodeLabel(ni)}: the graph has a cycle through this node");
                var node = _graph.Node[ni];
                if (node.Input.Count == 0 || node.Input[0] != current)
                    throw new InvalidDataException($"{NodeLabel(ni)}: takes '{current}' as a secondary input, which is not supported (branches and residual connections are not supported yet)");
                for (int k = 1; k < node.Input.Count; k++)
                {
                    string inp = node.Input[k];
                    if (inp.Length == 0 || _constants.ContainsKey(inp)) continue;
                    if (producer.TryGetValue(inp, out int p))
                        throw new InvalidDataException($"{NodeLabel(ni)}: input '{inp}' is computed by {NodeLabel(p)}, not a constant (branches and residual connections are not supported yet)");
                    throw new InvalidDataException($"{NodeLabel(ni)}: input '{inp}' is missing (no initializer, constant or node produces it)");
                }
                if (!IsDefaultDomain(node)) throw new InvalidDataException($"{NodeLabel(ni)}: operator domain '{node.Domain}' is not supported (only the default ONNX domain)");
                chain.Add(ni);
                var outs = node.Output.Where(o => o.Length > 0).ToList();
                if (outs.Count == 0) throw new InvalidDataException($"{NodeLabel(ni)}: has no output");
                for (int k = 1; k < outs.Count; k++)
                    if (consumers.ContainsKey(outs[k]) || outs[k] == output)
                        throw new InvalidDataException($"{NodeLabel(ni)}: its output '{outs[k]}' is used; only the first output of a node is supported");
                current = outs[0];
            }
            for (int i = 0; i < _graph.Node.Count; i++)
                if (!visited.Contains(i) && !IsSideNode(i))
                    throw new InvalidDataException($"{NodeLabel(i)}: is not on the chain from the input to the output (branches are not supported yet)");
            return chain;
        }

        // ------------------------------------------------------------------ operators

        private void Translate(List<int> chain)
        {
            (long Top, long Left, long Bottom, long Right)? pendingPad = null;
            int padNode = -1;
            for (int c = 0; c < chain.Count; c++)
            {
                int i = chain[c];
                var n = _graph.Node[i];
                string label = NodeLabel(i);
                if (n.OpType == "Sub" && _seq.Layers.Count == 0 && _standardization is null && c + 1 < chain.Count
                    && _graph.Node[chain[c + 1]].OpType is "Mul" or "Div")
                {
                    _standardization = ReadStandardization(i, chain[c + 1]);
                    c++;
                    continue;
                }
                if (pendingPad is not null && n.OpType is not ("Conv" or "AveragePool"))
                    throw new InvalidDataException($"{NodeLabel(padNode)}: a Pad is supported only when a Conv or AveragePool follows it (it is folded into their padding); here {label} follows");
                switch (n.OpType)
                {
                    case "Identity":
                        break;
                    case "Dropout":
                        RefuseAttributes(i, "ratio", "seed");
                        if (_opset >= 12 && n.Input.Count > 2 && n.Input[2].Length > 0 && Scalar(i, 2) != 0)
                            throw new InvalidDataException($"{label}: training_mode must be false");
                        break;
                    case "Pad":
                        pendingPad = ReadPad(i);
                        padNode = i;
                        break;
                    case "Conv":
                        Conv(i, pendingPad);
                        pendingPad = null;
                        break;
                    case "Gemm":
                        Gemm(i);
                        break;
                    case "MatMul":
                        {
                            int? add = c + 1 < chain.Count && _graph.Node[chain[c + 1]].OpType == "Add" ? chain[c + 1] : null;
                            MatMul(i, add);
                            if (add is not null) c++;
                            break;
                        }
                    case "Relu":
                        RefuseAttributes(i);
                        Add(i, new ReLU());
                        break;
                    case "Clip":
                        Clip(i);
                        break;
                    case "LeakyRelu":
                        {
                            RefuseAttributes(i, "alpha");
                            // ONNX's default alpha is 0.01 too; the range is the layer's rule.
                            float alpha = FloatAttr(n, "alpha") ?? 0.01f;
                            Add(i, Make(i, () => new LeakyReLU(alpha)));
                            break;
                        }
                    case "Sigmoid":
                        RefuseAttributes(i);
                        Add(i, new Sigmoid());
                        break;
                    case "Tanh":
                        RefuseAttributes(i);
                        Add(i, new Tanh());
                        break;
                    case "Softmax":
                        {
                            RefuseAttributes(i, "axis");
                            long axis = IntAttr(n, "axis") ?? (_opset >= 13 ? -1 : 1);
                            if (_rank != 2 || axis is not (1 or -1))
                                throw new InvalidDataException($"{label}: softmax over axis {axis} of a rank-{_rank} tensor is not supported (HpCnn's softmax runs over the features of a flat [batch, features] tensor)");
                            Add(i, new Softmax());
                            break;
                        }
                    case "MaxPool":
                    case "AveragePool":
                        Pool(i, pendingPad);
                        pendingPad = null;
                        break;
                    case "BatchNormalization":
                        BatchNorm(i);
                        break;
                    case "InstanceNormalization":
                        InstanceNorm(i);
                        break;
                    case "Flatten":
                        {
                            RefuseAttributes(i, "axis");
                            long axis = IntAttr(n, "axis") ?? 1;
                            if (axis != 1) throw new InvalidDataException($"{label}: flatten at axis {axis} is not supported (only axis 1: [batch, features])");
                            if (_rank == 4) Add(i, new Flatten());
                            _rank = 2;
                            break;
                        }
                    case "Reshape":
                        Reshape(i);
                        break;
                    case "Add":
                        throw new InvalidDataException($"{label}: an Add is supported only as the bias after a MatMul (residual connections are not supported yet)");
                    default:
                        throw new InvalidDataException($"{label}: operator {n.OpType} is not supported (supported: {SupportedOperators})");
                }
            }
            if (pendingPad is not null) throw new InvalidDataException($"{NodeLabel(padNode)}: a Pad at the end of the graph is not supported");
        }

        /// <summary>The operators the importer maps (for messages and the README).</summary>
        public const string SupportedOperators = "leading Sub + Mul/Div (standardisation), Conv, Gemm, MatMul+Add, Relu, Clip, LeakyRelu, Sigmoid, Tanh, Softmax, MaxPool, AveragePool, " +
            "BatchNormalization, InstanceNormalization, Flatten, Reshape to [batch, -1], Pad (zeros, folded), Constant, Identity, Dropout";

        /// <summary>A layer from its constructor, whose refusal (the layer's one rule for its values) names the node.</summary>
        private T Make<T>(int node, Func<T> make, string hint = "") where T : Layer
        {
            try
            {
                return make();
            }
            catch (ArgumentException e)
            {
                string message = e.ParamName is { } p ? e.Message.Replace($" (Parameter '{p}')", "", StringComparison.Ordinal) : e.Message;
                throw new InvalidDataException($"{NodeLabel(node)}: {message}{hint}", e);
            }
        }

        private void Add(int node, Layer layer)
        {
            try
            {
                _seq.Add(layer);
            }
            catch (ArgumentException e)
            {
                string msg = e.Message.StartsWith("layer ", StringComparison.Ordinal) && e.Message.IndexOf("): ", StringComparison.Ordinal) is int k and > 0 ? e.Message[(k + 3)..] : e.Message;
                throw new InvalidDataException($"{NodeLabel(node)}: {msg}", e);
            }
            catch (InvalidDataException e)
            {
                throw new InvalidDataException($"{NodeLabel(node)}: {e.Message}", e);
            }
            if (_seq.Layers.Count > NetworkSpec.MaxLayers) throw new InvalidDataException($"{NodeLabel(node)}: more than {NetworkSpec.MaxLayers} layers");
            _flops += layer.FlopsPerSample;
            if (_flops > flopBudget)
                throw new InvalidDataException(
                    $"{NodeLabel(node)}: the forward pass would cost {ComputeBudget.Gflop(_flops)} per image (this layer {ComputeBudget.Gflop(layer.FlopsPerSample)}, output {layer.OutputShape}), " +
                    $"above the compute budget of {ComputeBudget.Gflop(flopBudget)} per image; if you trust this model, raise the budget (maxFlopsPerImage, --max-gflops, max_flops_per_image)");
        }

        private Shape3 Current => _seq.OutputShape;

        private void RequireImage(int i)
        {
            if (_rank != 4) throw new InvalidDataException($"{NodeLabel(i)}: expected an image tensor [batch, channels, height, width], got a flat [batch, features] tensor");
        }

        private void RefuseAttributes(int i, params string[] known)
        {
            foreach (var a in _graph.Node[i].Attribute)
                if (Array.IndexOf(known, a.Name) < 0)
                    throw new InvalidDataException($"{NodeLabel(i)}: attribute '{a.Name}' is not supported");
        }

        private static OnnxPb.AttributeProto? Attr(OnnxPb.NodeProto n, string name) => n.Attribute.FirstOrDefault(a => a.Name == name);
        private static float? FloatAttr(OnnxPb.NodeProto n, string name) => Attr(n, name) is { } a ? a.F : null;
        private static long? IntAttr(OnnxPb.NodeProto n, string name) => Attr(n, name) is { } a ? a.I : null;
        private static long[]? IntsAttr(OnnxPb.NodeProto n, string name) => Attr(n, name) is { } a ? [.. a.Ints] : null;

        private OnnxPb.TensorProto Constant(int i, int input)
        {
            var n = _graph.Node[i];
            if (input >= n.Input.Count || n.Input[input].Length == 0) throw new InvalidDataException($"{NodeLabel(i)}: input {input} is missing");
            return _constants.TryGetValue(n.Input[input], out var t) ? t : throw new InvalidDataException($"{NodeLabel(i)}: input '{n.Input[input]}' is not a constant");
        }

        private bool HasInput(int i, int input) => input < _graph.Node[i].Input.Count && _graph.Node[i].Input[input].Length > 0;

        private float[] Floats(int i, int input, string what) => OnnxTensors.Floats(Constant(i, input), MaxTensorValues, $"{NodeLabel(i)}: {what} '{_graph.Node[i].Input[input]}'");

        private float Scalar(int i, int input)
        {
            var t = Constant(i, input);
            var what = $"{NodeLabel(i)}: input '{_graph.Node[i].Input[input]}'";
            if (t.DataType == (int)OnnxPb.TensorProto.Types.DataType.Bool)
                return t.Int32Data.Count > 0 ? t.Int32Data[0] : t.RawData.Length > 0 ? t.RawData[0] : 0;
            var v = t.DataType is (int)OnnxPb.TensorProto.Types.DataType.Int64 or (int)OnnxPb.TensorProto.Types.DataType.Int32
                ? OnnxTensors.Int64s(t, 1, what).Select(x => (float)x).ToArray()
                : OnnxTensors.Floats(t, 1, what);
            if (v.Length != 1) throw new InvalidDataException($"{what}: expected one value, got {v.Length}");
            return v[0];
        }

        private (long, long, long, long) ReadPad(int i)
        {
            var n = _graph.Node[i];
            RequireImage(i);
            RefuseAttributes(i, "mode", "pads", "value");
            if (Attr(n, "mode") is { } mode && mode.S.ToStringUtf8() != "constant")
                throw new InvalidDataException($"{NodeLabel(i)}: mode '{mode.S.ToStringUtf8()}' is not supported (only zero padding)");
            long[] pads;
            float value = FloatAttr(n, "value") ?? 0;
            if (_opset >= 11)
            {
                pads = OnnxTensors.Int64s(Constant(i, 1), 64, $"{NodeLabel(i)}: pads");
                if (HasInput(i, 2)) value = Scalar(i, 2);
                if (HasInput(i, 3)) throw new InvalidDataException($"{NodeLabel(i)}: the axes input is not supported");
            }
            else pads = IntsAttr(n, "pads") ?? throw new InvalidDataException($"{NodeLabel(i)}: no pads");
            if (value != 0) throw new InvalidDataException($"{NodeLabel(i)}: padding with {value} is not supported (only zeros)");
            if (pads.Length != 8) throw new InvalidDataException($"{NodeLabel(i)}: {pads.Length} pads, expected 8 for an image tensor");
            if (pads[0] != 0 || pads[1] != 0 || pads[4] != 0 || pads[5] != 0)
                throw new InvalidDataException($"{NodeLabel(i)}: padding the batch or channel dimension is not supported");
            if (pads.Any(p => p < 0 || p > NetworkSpec.MaxKernel)) throw new InvalidDataException($"{NodeLabel(i)}: pads [{string.Join(", ", pads)}] must be in 0..{NetworkSpec.MaxKernel}");
            return (pads[2], pads[3], pads[6], pads[7]);
        }

        /// <summary>Kernel, strides and per-side padding of a Conv or pooling node (auto_pad resolved), with a folded Pad added.</summary>
        private ((int H, int W) Kernel, (int H, int W) Stride, Padding Padding) Window(int i, (int H, int W) kernel, (long, long, long, long)? extraPad)
        {
            var n = _graph.Node[i];
            var k = IntsAttr(n, "kernel_shape");
            if (k is not null && (k.Length != 2 || k[0] != kernel.H || k[1] != kernel.W))
                throw new InvalidDataException($"{NodeLabel(i)}: kernel_shape [{string.Join(", ", k)}] does not match a 2-D window of {kernel.H}x{kernel.W}");
            if (kernel.H < 1 || kernel.W < 1 || kernel.H > NetworkSpec.MaxKernel || kernel.W > NetworkSpec.MaxKernel)
                throw new InvalidDataException($"{NodeLabel(i)}: window {kernel.H}x{kernel.W} is not supported (1..{NetworkSpec.MaxKernel})");
            var s = IntsAttr(n, "strides") ?? [1, 1];
            if (s.Length != 2 || s.Any(v => v < 1 || v > NetworkSpec.MaxKernel)) throw new InvalidDataException($"{NodeLabel(i)}: strides [{string.Join(", ", s)}] are not supported");
            var d = IntsAttr(n, "dilations");
            if (d is not null && d.Any(v => v != 1)) throw new InvalidDataException($"{NodeLabel(i)}: dilations [{string.Join(", ", d)}] are not supported (only 1)");
            string autoPad = Attr(n, "auto_pad")?.S.ToStringUtf8() ?? "NOTSET";
            var shape = Current;
            long pt, pl, pb, pr;
            switch (autoPad)
            {
                case "NOTSET" or "":
                    var p = IntsAttr(n, "pads") ?? [0, 0, 0, 0];
                    if (p.Length != 4 || p.Any(v => v < 0 || v > NetworkSpec.MaxKernel)) throw new InvalidDataException($"{NodeLabel(i)}: pads [{string.Join(", ", p)}] are not supported");
                    (pt, pl, pb, pr) = (p[0], p[1], p[2], p[3]);
                    break;
                case "VALID":
                    (pt, pl, pb, pr) = (0, 0, 0, 0);
                    break;
                case "SAME_UPPER" or "SAME_LOWER":
                    {
                        long th = Math.Max(((shape.H + s[0] - 1) / s[0] - 1) * s[0] + kernel.H - shape.H, 0);
                        long tw = Math.Max(((shape.W + s[1] - 1) / s[1] - 1) * s[1] + kernel.W - shape.W, 0);
                        bool upper = autoPad == "SAME_UPPER";
                        pt = upper ? th / 2 : th - th / 2; pb = th - pt;
                        pl = upper ? tw / 2 : tw - tw / 2; pr = tw - pl;
                        break;
                    }
                default:
                    throw new InvalidDataException($"{NodeLabel(i)}: auto_pad '{autoPad}' is not supported");
            }
            if (extraPad is var (et, el, eb, er)) { pt += et; pl += el; pb += eb; pr += er; }
            return (kernel, ((int)s[0], (int)s[1]), Padding.Explicit((int)pt, (int)pl, (int)pb, (int)pr));
        }

        private void Conv(int i, (long, long, long, long)? pad)
        {
            var n = _graph.Node[i];
            RequireImage(i);
            RefuseAttributes(i, "kernel_shape", "strides", "pads", "dilations", "group", "auto_pad");
            if ((IntAttr(n, "group") ?? 1) != 1) throw new InvalidDataException($"{NodeLabel(i)}: grouped convolution (group {IntAttr(n, "group")}) is not supported");
            var wt = Constant(i, 1);
            if (wt.Dims.Count != 4) throw new InvalidDataException($"{NodeLabel(i)}: weight '{n.Input[1]}' has {wt.Dims.Count} dimensions, expected 4 (a 2-D convolution)");
            var w = Floats(i, 1, "weight");
            long outC = wt.Dims[0], inC = wt.Dims[1];
            if (inC != Current.C) throw new InvalidDataException($"{NodeLabel(i)}: weight '{n.Input[1]}' is for {inC} input channels, the tensor has {Current.C}");
            if (outC < 1 || outC > NetworkSpec.MaxDimension) throw new InvalidDataException($"{NodeLabel(i)}: {outC} filters are not supported");
            float[]? b = null;
            if (HasInput(i, 2))
            {
                b = Floats(i, 2, "bias");
                if (b.Length != outC) throw new InvalidDataException($"{NodeLabel(i)}: bias '{n.Input[2]}' has {b.Length} values for {outC} filters");
            }
            var (kernel, stride, padding) = Window(i, ((int)wt.Dims[2], (int)wt.Dims[3]), pad);
            var layer = new Conv2D((int)outC, kernel, stride, padding, bias: b is not null);
            Add(i, layer);
            layer.Weight.Set(w);
            if (b is not null) layer.Bias!.Set(b);
        }

        private void Pool(int i, (long, long, long, long)? pad)
        {
            var n = _graph.Node[i];
            RequireImage(i);
            bool max = n.OpType == "MaxPool";
            RefuseAttributes(i, max ? ["kernel_shape", "strides", "pads", "dilations", "auto_pad", "ceil_mode", "storage_order"]
                                    : ["kernel_shape", "strides", "pads", "auto_pad", "ceil_mode", "count_include_pad"]);
            if ((IntAttr(n, "ceil_mode") ?? 0) != 0) throw new InvalidDataException($"{NodeLabel(i)}: ceil_mode=1 is not supported (HpCnn's pooling rounds the output size down)");
            if ((IntAttr(n, "storage_order") ?? 0) != 0) throw new InvalidDataException($"{NodeLabel(i)}: storage_order=1 is not supported");
            var k = IntsAttr(n, "kernel_shape") ?? throw new InvalidDataException($"{NodeLabel(i)}: no kernel_shape");
            if (k.Length != 2) throw new InvalidDataException($"{NodeLabel(i)}: kernel_shape [{string.Join(", ", k)}] is not a 2-D window");
            if (k.Any(v => v < 1 || v > NetworkSpec.MaxKernel)) throw new InvalidDataException($"{NodeLabel(i)}: window [{string.Join(", ", k)}] is not supported");
            var (kernel, stride, padding) = Window(i, ((int)k[0], (int)k[1]), null);
            bool ownPads = padding.Top + padding.Left + padding.Bottom + padding.Right > 0;
            if (!max && ownPads && (IntAttr(n, "count_include_pad") ?? 0) == 0)
                throw new InvalidDataException($"{NodeLabel(i)}: average pooling with padding and count_include_pad=0 is not supported (HpCnn counts the padding zeros in the divisor, PyTorch's count_include_pad=True)");
            if (pad is var (et, el, eb, er))
                padding = Padding.Explicit(padding.Top + (int)et, padding.Left + (int)el, padding.Bottom + (int)eb, padding.Right + (int)er);
            Add(i, max ? new MaxPool2D(kernel, stride, padding) : new AvgPool2D(kernel, stride, padding));
        }

        private void Gemm(int i)
        {
            var n = _graph.Node[i];
            RefuseAttributes(i, "alpha", "beta", "transA", "transB");
            if (_rank != 2) throw new InvalidDataException($"{NodeLabel(i)}: expected a flat [batch, features] input (add a Flatten before it)");
            if ((FloatAttr(n, "alpha") ?? 1) != 1 || (FloatAttr(n, "beta") ?? 1) != 1)
                throw new InvalidDataException($"{NodeLabel(i)}: alpha and beta other than 1 are not supported");
            if ((IntAttr(n, "transA") ?? 0) != 0) throw new InvalidDataException($"{NodeLabel(i)}: transA=1 is not supported");
            bool transB = (IntAttr(n, "transB") ?? 0) != 0;
            Dense(i, 1, transB, HasInput(i, 2) ? (i, 2) : null);
        }

        private void MatMul(int i, int? add)
        {
            if (_rank != 2) throw new InvalidDataException($"{NodeLabel(i)}: expected a flat [batch, features] input (add a Flatten before it)");
            RefuseAttributes(i);
            (int, int)? bias = null;
            if (add is int a)
            {
                var an = _graph.Node[a];
                if (an.Input.Count != 2 || an.Input[0] != _graph.Node[i].Output[0]) throw new InvalidDataException($"{NodeLabel(a)}: expected the MatMul's result plus a constant bias");
                RefuseAttributes(a);
                bias = (a, 1);
            }
            Dense(i, 1, false, bias);
        }

        /// <summary>A dense layer from a constant weight (Units x In when transposed, else In x Units) and an optional bias input.</summary>
        private void Dense(int i, int weightInput, bool transposed, (int Node, int Input)? bias)
        {
            var n = _graph.Node[i];
            var wt = Constant(i, weightInput);
            if (wt.Dims.Count != 2) throw new InvalidDataException($"{NodeLabel(i)}: weight '{n.Input[weightInput]}' has {wt.Dims.Count} dimensions, expected 2");
            var w = Floats(i, weightInput, "weight");
            long units = transposed ? wt.Dims[0] : wt.Dims[1], inF = transposed ? wt.Dims[1] : wt.Dims[0];
            if (inF != Current.Size) throw new InvalidDataException($"{NodeLabel(i)}: weight '{n.Input[weightInput]}' is for {inF} input features, the tensor has {Current.Size}");
            if (units < 1 || units > 1 << 24) throw new InvalidDataException($"{NodeLabel(i)}: {units} outputs are not supported");
            if (!transposed)
            {
                var t = new float[w.Length];
                for (long r = 0; r < inF; r++)
                    for (long c = 0; c < units; c++) t[c * inF + r] = w[r * units + c];
                w = t;
            }
            float[]? b = null;
            if (bias is var (bn, bi))
            {
                var bt = Constant(bn, bi);
                b = OnnxTensors.Floats(bt, MaxTensorValues, $"{NodeLabel(bn)}: bias '{_graph.Node[bn].Input[bi]}'");
                bool shapeOk = bt.Dims.Count switch { 1 => bt.Dims[0] == units, 2 => bt.Dims[0] == 1 && bt.Dims[1] == units, _ => false };
                if (!shapeOk || b.Length != units)
                    throw new InvalidDataException($"{NodeLabel(bn)}: bias '{_graph.Node[bn].Input[bi]}' is {OnnxTensors.DimsText(bt)}, expected {units} values (one per output)");
            }
            var layer = new Dense((int)units, bias: b is not null);
            Add(i, layer);
            layer.Weight.Set(w);
            if (b is not null) layer.Bias!.Set(b);
        }

        private void Clip(int i)
        {
            var n = _graph.Node[i];
            float lo, hi;
            if (_opset >= 11)
            {
                RefuseAttributes(i);
                lo = HasInput(i, 1) ? Scalar(i, 1) : float.NegativeInfinity;
                hi = HasInput(i, 2) ? Scalar(i, 2) : float.PositiveInfinity;
            }
            else
            {
                RefuseAttributes(i, "min", "max");
                lo = FloatAttr(n, "min") ?? float.MinValue;
                hi = FloatAttr(n, "max") ?? float.MaxValue;
            }
            if (lo != 0 || !(hi > 0))
                throw new InvalidDataException($"{NodeLabel(i)}: Clip(min {lo.ToString(CultureInfo.InvariantCulture)}, max {hi.ToString(CultureInfo.InvariantCulture)}) is not supported (only min 0, a ReLU capped at a positive max)");
            Add(i, float.IsPositiveInfinity(hi) || hi == float.MaxValue ? new ReLU() : new ReLU(hi));
        }

        private void BatchNorm(int i)
        {
            var n = _graph.Node[i];
            RefuseAttributes(i, "epsilon", "momentum", "spatial", "training_mode", "is_test", "consumed_inputs");
            if ((IntAttr(n, "training_mode") ?? 0) != 0) throw new InvalidDataException($"{NodeLabel(i)}: training_mode=1 is not supported (export the model in eval mode)");
            if ((IntAttr(n, "spatial") ?? 1) != 1) throw new InvalidDataException($"{NodeLabel(i)}: spatial=0 is not supported");
            // ONNX's defaults (epsilon 1e-5, momentum 0.9 of the old value); the ranges are the layer's rule.
            float eps = FloatAttr(n, "epsilon") ?? 1e-5f;
            float onnxMomentum = FloatAttr(n, "momentum") ?? 0.9f;
            int c = Current.C;
            string[] names = ["scale", "bias", "mean", "variance"];
            var values = new float[4][];
            for (int k = 0; k < 4; k++)
            {
                values[k] = Floats(i, k + 1, names[k]);
                if (values[k].Length != c) throw new InvalidDataException($"{NodeLabel(i)}: {names[k]} '{n.Input[k + 1]}' has {values[k].Length} values for {c} channels");
            }
            var layer = Make(i, () => new BatchNorm2D(eps, (float)Math.Round(1.0 - onnxMomentum, 7)),
                $" (from ONNX momentum {onnxMomentum.ToString(CultureInfo.InvariantCulture)}, which weighs the old running value: HpCnn's momentum is 1 minus it)");
            Add(i, layer);
            layer.Gamma.Set(values[0]);
            layer.Beta.Set(values[1]);
            layer.RunningMean.Set(values[2]);
            layer.RunningVar.Set(values[3]);
        }

        private void InstanceNorm(int i)
        {
            var n = _graph.Node[i];
            RequireImage(i);
            RefuseAttributes(i, "epsilon");
            float eps = FloatAttr(n, "epsilon") ?? 1e-5f; // ONNX's default
            var scale = Floats(i, 1, "scale");
            var bias = Floats(i, 2, "bias");
            if (scale.Length != Current.C || bias.Length != Current.C)
                throw new InvalidDataException($"{NodeLabel(i)}: scale and bias need {Current.C} values, got {scale.Length} and {bias.Length}");
            if (scale.Any(v => v != 1) || bias.Any(v => v != 0))
                throw new InvalidDataException($"{NodeLabel(i)}: a learned scale or bias is not supported (HpCnn's featuremapnorm has scale 1 and bias 0)");
            Add(i, Make(i, () => new FeatureMapNorm(eps)));
        }

        private void Reshape(int i)
        {
            var n = _graph.Node[i];
            RefuseAttributes(i, "allowzero");
            long[] shape = _opset >= 5
                ? OnnxTensors.Int64s(Constant(i, 1), 8, $"{NodeLabel(i)}: shape")
                : IntsAttr(n, "shape") ?? throw new InvalidDataException($"{NodeLabel(i)}: no shape");
            var cur = Current;
            bool batchOk = shape.Length > 0 && (shape[0] is 0 or -1 or BatchDim || shape[0] == _fixedBatch);
            if (batchOk && shape.Length == 2 && (shape[1] == -1 || shape[1] == cur.Size))
            {
                if (_rank == 4) Add(i, new Flatten());
                _rank = 2;
                return;
            }
            if (batchOk && shape.Length == 4 && shape[1] == cur.C && shape[2] == cur.H && shape[3] == cur.W)
            {
                _rank = 4; // a flat C x 1 x 1 vector as an image, or an image to itself
                return;
            }
            string target = string.Join(", ", shape.Select(d => d == BatchDim ? "batch" : d == UnknownDim ? "?" : d.ToString(CultureInfo.InvariantCulture)));
            throw new InvalidDataException($"{NodeLabel(i)}: reshape of {cur} to [{target}] is not supported (only to [batch, -1], a flatten)");
        }

        /// <summary>
        /// Leading Sub(mean) then Mul(1/std) or Div(std) with constants: the input's standardisation, which an HpCnn model
        /// keeps in its metadata (the hpcnn command applies it) rather than as layers. Global (one value each) or per
        /// pixel ([1, C, H, W] or [C, H, W]).
        /// </summary>
        private Data.Standardization ReadStandardization(int sub, int scale)
        {
            RefuseAttributes(sub);
            RefuseAttributes(scale);
            var meanT = Constant(sub, 1);
            var scaleT = Constant(scale, 1);
            var mean = Floats(sub, 1, "mean");
            var factor = Floats(scale, 1, _graph.Node[scale].OpType == "Mul" ? "scale" : "divisor");
            var input = Current;
            bool Global(OnnxPb.TensorProto t, float[] v) => v.Length == 1 && t.Dims.All(d => d == 1);
            bool PerPixel(OnnxPb.TensorProto t, float[] v) =>
                v.Length == input.Size && t.Dims.Count >= 3 && t.Dims[^3] == input.C && t.Dims[^2] == input.H && t.Dims[^1] == input.W && t.Dims.SkipLast(3).All(d => d == 1);
            bool global = Global(meanT, mean) && Global(scaleT, factor);
            if (!global && !(PerPixel(meanT, mean) && PerPixel(scaleT, factor)))
                throw new InvalidDataException($"{NodeLabel(sub)}: a leading Sub and {_graph.Node[scale].OpType} are read as the input's standardisation, which needs one mean and one scale, or one of each per pixel of the {input} input; got {OnnxTensors.DimsText(meanT)} and {OnnxTensors.DimsText(scaleT)}");
            float[] std = factor;
            if (_graph.Node[scale].OpType == "Mul")
                std = factor.Select(Reciprocal).ToArray();
            try
            {
                return Data.Standardization.Create(global ? Data.StandardizeMode.Global : Data.StandardizeMode.PerPixel, mean, std);
            }
            catch (ArgumentException e)
            {
                throw new InvalidDataException($"{NodeLabel(sub)}: {e.Message}", e);
            }
        }

        /// <summary>A std whose float reciprocal (as the engine computes 1f / std) is exactly <paramref name="inv"/> where one exists.</summary>
        private static float Reciprocal(float inv)
        {
            float s = 1f / inv;
            for (int k = 0; k < 4 && 1f / s != inv; k++)
            {
                if (1f / MathF.BitIncrement(s) == inv) return MathF.BitIncrement(s);
                if (1f / MathF.BitDecrement(s) == inv) return MathF.BitDecrement(s);
                s = 1f / s > inv ? MathF.BitIncrement(s) : MathF.BitDecrement(s);
            }
            return s;
        }

        /// <summary>
        /// The model's metadata (metadata_props "hpcnn_metadata", as written) and preprocessing: HpCnn's record
        /// ("hpcnn_preprocessing"; from an older HpCnn, the standardisation and class names of its metadata), the class
        /// names ("class_names", as other tools write them) when the record has none, and a standardisation read from
        /// leading nodes, which wins: the imported model takes what those nodes produced.
        /// </summary>
        private void ApplyMetadata()
        {
            string? hpcnn = null, classNames = null, preprocessing = null;
            foreach (var p in model.MetadataProps)
            {
                if (p.Key == "hpcnn_metadata") hpcnn = p.Value;
                else if (p.Key == "class_names") classNames = p.Value;
                else if (p.Key == "hpcnn_preprocessing") preprocessing = p.Value;
            }
            // Metadata is informative: a malformed entry is left out, it does not stop the import.
            if (hpcnn is not null)
                try { _seq.Metadata = hpcnn; } catch (ArgumentException) { hpcnn = null; }
            Data.Preprocessing? record = null;
            try { record = preprocessing is not null ? Data.Preprocessing.FromJson(preprocessing) : Data.Preprocessing.FromLegacyMetadata(hpcnn); }
            catch (InvalidDataException) { }
            record ??= Data.Preprocessing.None;
            if (record.ClassNames is null && classNames is not null)
            {
                try
                {
                    using var names = JsonDocument.Parse(classNames);
                    if (names.RootElement.ValueKind == JsonValueKind.Array && names.RootElement.GetArrayLength() > 0)
                        record = record with { ClassNames = names.RootElement.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.String ? e.GetString()! : e.ToString()).ToArray() };
                }
                catch (JsonException) { }
            }
            if (_standardization is not null) record = record with { Standardization = _standardization };
            try { _seq.Preprocessing = record; }
            catch (ArgumentException)
            {
                _seq.Preprocessing = Data.Preprocessing.None with { Standardization = _standardization };
            }
        }
    }
}
