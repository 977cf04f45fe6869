using System.Buffers;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using FaaSMon.Classifier.Features;
using static TorchSharp.torch;

namespace FaaSMon.Classifier.Models;

/// <summary>
/// A trained <see cref="GraphNet"/>'s forward pass in plain C#, for scoring: the weights are copied out once, and one graph
/// costs a few passes over its rows and edges with no torch call, no tensor and no allocation (buffers come from the pool).
/// Torch pays a native call, a tensor and a heap block per operation — about 60 of them for three GIN layers — and
/// index_add walks the edges one row at a time; on a 1k-node graph that was 3 ms, this is a fraction of one. Training and
/// the explanation (a backward pass) stay on torch. The arithmetic is the network's, in float, in another order, so
/// scores agree with <see cref="GraphNet"/> to float rounding (tests hold the two together); the one rewrite is the input
/// standardisation folded into the first layer's weights, which lets that layer skip the zero feature columns.
/// </summary>
internal sealed class FrozenGraphNet
{
    private readonly GnnArch _arch;
    private readonly TrainingMode _mode;
    private readonly int _hidden;
    private readonly int _features;
    private readonly int _relations;

    // Dense layers are stored transposed (in × out), so a row of the output accumulates whole rows of weights.
    private readonly float[] _inputT;
    private readonly float[] _inputBias;
    private readonly Layer[] _layers;
    private readonly float[] _head0T;
    private readonly float[] _head0Bias;
    private readonly float[] _head2;
    private readonly float _head2Bias;
    private readonly float[] _decoder0T;
    private readonly float[] _decoder0Bias;
    private readonly float[] _decoder2T;
    private readonly float[] _decoder2Bias;
    private readonly float[] _featureMean;
    private readonly float[] _featureScale;

    private sealed record Layer(float[] Relation, float[] SelfT, float[] SelfBias, float[] NeighboursT, float[] MixT, float[] MixBias,
        float[] NormWeight, float[] NormBias, float EpsilonPlusOne);

    /// <summary>LayerNorm's default epsilon (TorchSharp, PyTorch).</summary>
    private const float NormEpsilon = 1e-5f;

    public FrozenGraphNet(GraphNet net, GnnOptions options)
    {
        ArgumentNullException.ThrowIfNull(net);
        ArgumentNullException.ThrowIfNull(options);
        _arch = options.Arch;
        _mode = options.Mode;
        _hidden = options.EffectiveHidden;
        _features = GraphFeatures.FeatureCount;
        _relations = GraphFeatures.RelationCount;
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var parameters = net.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var buffers = net.named_buffers().ToDictionary(p => p.name, p => p.buffer);
        float[] Read(Tensor t) => t.detach().cpu().contiguous().data<float>().ToArray();
        float[] Parameter(string name) => Read(parameters[name]);
        float[] Transposed(string name) => Read(parameters[name].t());

        _featureMean = Read(buffers["featureMean"]);
        _featureScale = Read(buffers["featureScale"]);

        // (x - mean) / scale · Wᵀ + b = x · (W / scale)ᵀ + (b - Σ W · mean / scale): raw feature rows are mostly zeros
        // (one-hot kinds, counts of the edge kinds a node does not have), and the folded layer skips them.
        var inputT = Transposed("input.weight");
        var inputBias = Parameter("input.bias");
        var bias = inputBias.Select(b => (double)b).ToArray();
        for (var k = 0; k < _features; k++)
        {
            for (var o = 0; o < _hidden; o++)
            {
                var w = inputT[(k * _hidden) + o] / _featureScale[k];
                bias[o] -= (double)w * _featureMean[k];
                inputT[(k * _hidden) + o] = w;
            }
        }

        _inputT = inputT;
        _inputBias = [.. bias.Select(b => (float)b)];
        _layers = [.. Enumerable.Range(0, options.Layers).Select(l => new Layer(
            Parameter($"layers.{l}.relation.weight"),
            Transposed($"layers.{l}.self.weight"),
            Parameter($"layers.{l}.self.bias"),
            Transposed($"layers.{l}.neighbours.weight"),
            Transposed($"layers.{l}.mix.weight"),
            Parameter($"layers.{l}.mix.bias"),
            Parameter($"layers.{l}.norm.weight"),
            Parameter($"layers.{l}.norm.bias"),
            Parameter($"layers.{l}.epsilon")[0] + 1f))];
        _head0T = Transposed("head.0.weight");
        _head0Bias = Parameter("head.0.bias");
        _head2 = Parameter("head.2.weight");
        _head2Bias = Parameter("head.2.bias")[0];
        _decoder0T = Transposed("decoder.0.weight");
        _decoder0Bias = Parameter("decoder.0.bias");
        _decoder2T = Transposed("decoder.2.weight");
        _decoder2Bias = Parameter("decoder.2.bias");
    }

    /// <summary>
    /// Supervised: the attack logit. Anomaly: the worst node's reconstruction error (the raw score). Same numbers as
    /// <see cref="GraphNet.GraphLogits"/> and the maximum of <see cref="GraphNet.NodeReconstructionError"/> for this graph alone.
    /// </summary>
    /// <exception cref="ArgumentException">The features do not fit this network (width, edge indices or types out of range).</exception>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public float Raw(GraphFeatures graph)
    {
        ArgumentNullException.ThrowIfNull(graph);
        Validate(graph);
        var n = graph.NodeCount;
        var edges = graph.Source.Length;
        var floats = ArrayPool<float>.Shared;
        var ints = ArrayPool<int>.Shared;
        var current = floats.Rent(n * _hidden);
        var next = floats.Rent(n * _hidden);
        var aggregate = floats.Rent(n * _hidden);
        var scratch = floats.Rent(Math.Max(n, 2) * _hidden);
        var incoming = floats.Rent(n);
        var inverseRoot = floats.Rent(n);
        var start = ints.Rent(n + 1);
        var source = ints.Rent(edges);
        var type = ints.Rent(edges);
        try
        {
            var graphIn = new Incoming(start, source, type, incoming, inverseRoot);
            graphIn.Build(graph);
            Input(graph.X, n, current);
            foreach (var layer in _layers)
            {
                Propagate(layer, n, graphIn, current, next, aggregate, scratch);
                (current, next) = (next, current);
            }

            return _mode == TrainingMode.Supervised ? Logit(current, n, scratch) : WorstReconstruction(graph.X, current, n, scratch);
        }
        finally
        {
            floats.Return(current);
            floats.Return(next);
            floats.Return(aggregate);
            floats.Return(scratch);
            floats.Return(incoming);
            floats.Return(inverseRoot);
            ints.Return(start);
            ints.Return(source);
            ints.Return(type);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Validate(GraphFeatures graph)
    {
        var n = graph.NodeCount;
        if (n <= 0 || graph.X.Length != (long)n * _features)
        {
            throw new ArgumentException($"graph {graph.GraphId}: {graph.X.Length} feature values for {n} nodes of {_features}", nameof(graph));
        }

        if (graph.Target.Length != graph.Source.Length || graph.EdgeType.Length != graph.Source.Length)
        {
            throw new ArgumentException($"graph {graph.GraphId}: edge arrays of different lengths", nameof(graph));
        }

        for (var e = 0; e < graph.Source.Length; e++)
        {
            if ((ulong)graph.Source[e] >= (ulong)n || (ulong)graph.Target[e] >= (ulong)n || (ulong)graph.EdgeType[e] >= (ulong)_relations)
            {
                throw new ArgumentException($"graph {graph.GraphId}: edge {e} ({graph.Source[e]}→{graph.Target[e]}, type {graph.EdgeType[e]}) is out of range", nameof(graph));
            }
        }
    }

    /// <summary>
    /// The edges grouped by target (a stable counting sort, so each node sums its messages in edge order, as index_add
    /// does), and the normalisers: 1 + in-degree (GCN and SAGE count a self loop, as GraphNet does) and its inverse root.
    /// </summary>
    private readonly record struct Incoming(int[] Start, int[] Source, int[] Type, float[] Count, float[] InverseRoot)
    {
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Build(GraphFeatures graph)
        {
            var n = graph.NodeCount;
            var start = Start.AsSpan(0, n + 1);
            start.Clear();
            foreach (var t in graph.Target)
            {
                start[(int)t + 1]++;
            }

            for (var i = 0; i < n; i++)
            {
                Count[i] = 1f + start[i + 1];
                InverseRoot[i] = 1f / MathF.Sqrt(Count[i]);
                start[i + 1] += start[i];
            }

            // start[t] is the next free slot of t while filling, then shifted back to where t begins.
            for (var e = 0; e < graph.Target.Length; e++)
            {
                var slot = start[(int)graph.Target[e]]++;
                Source[slot] = (int)graph.Source[e];
                Type[slot] = (int)graph.EdgeType[e];
            }

            for (var i = n; i > 0; i--)
            {
                start[i] = start[i - 1];
            }

            start[0] = 0;
        }
    }

    /// <summary>relu(x · inputᵀ + bias), standardisation folded in; zero feature columns cost nothing.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Input(float[] x, int n, float[] output)
    {
        var h = _hidden;
        for (var i = 0; i < n; i++)
        {
            var row = output.AsSpan(i * h, h);
            Dense(x.AsSpan(i * _features, _features), _inputT, _inputBias, row, skipZeros: true);
            Relu(row);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Propagate(Layer layer, int n, Incoming incoming, float[] current, float[] next, float[] aggregate, float[] scratch)
    {
        var h = _hidden;
        Aggregate(layer.Relation, n, incoming, current, aggregate, h, _arch == GnnArch.Gcn);
        var size = n * h;
        switch (_arch)
        {
            case GnnArch.Gin:
                // relu(mix(relu(self(norm((1 + ε) h + Σ messages)))))
                for (var i = 0; i < n; i++)
                {
                    var z = aggregate.AsSpan(i * h, h);
                    MultiplyAdd(layer.EpsilonPlusOne, current.AsSpan(i * h, h), z);
                    LayerNorm(z, layer.NormWeight, layer.NormBias);
                }

                DenseRows(aggregate.AsSpan(0, size), h, layer.SelfT, layer.SelfBias, scratch.AsSpan(0, size), h, relu: true);
                DenseRows(scratch.AsSpan(0, size), h, layer.MixT, layer.MixBias, next.AsSpan(0, size), h, relu: true);
                break;
            case GnnArch.Gcn:
                // relu(self(Σ messages / sqrt(d_s d_t) + h / d)), d = 1 + in-degree
                for (var i = 0; i < n; i++)
                {
                    var summed = aggregate.AsSpan(i * h, h);
                    var row = current.AsSpan(i * h, h);
                    var inverseRoot = incoming.InverseRoot[i];
                    var degree = incoming.Count[i];
                    for (var j = 0; j < h; j++)
                    {
                        summed[j] = (summed[j] * inverseRoot) + (row[j] / degree);
                    }
                }

                DenseRows(aggregate.AsSpan(0, size), h, layer.SelfT, layer.SelfBias, next.AsSpan(0, size), h, relu: true);
                break;
            default:
                // relu(self(h) + neighbours(mean of messages))
                for (var i = 0; i < n; i++)
                {
                    var mean = aggregate.AsSpan(i * h, h);
                    var count = Math.Max(incoming.Count[i] - 1f, 1f);
                    for (var j = 0; j < h; j++)
                    {
                        mean[j] /= count;
                    }
                }

                DenseRows(current.AsSpan(0, size), h, layer.SelfT, layer.SelfBias, next.AsSpan(0, size), h, relu: false);
                DenseRows(aggregate.AsSpan(0, size), h, layer.NeighboursT, null, next.AsSpan(0, size), h, relu: true, accumulate: true);
                break;
        }
    }

    /// <summary>
    /// aggregate[t] = Σ over edges s→t of relu(h[s] + relation[type]), each times 1/sqrt(d_s) for GCN (whose 1/sqrt(d_t)
    /// comes after); one target row at a time, in registers.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Aggregate(float[] relation, int n, Incoming incoming, float[] h, float[] aggregate, int width, bool weighBySource)
    {
        ref var hBase = ref MemoryMarshal.GetArrayDataReference(h);
        ref var relationBase = ref MemoryMarshal.GetArrayDataReference(relation);
        ref var outBase = ref MemoryMarshal.GetArrayDataReference(aggregate);
        var start = incoming.Start;
        var source = incoming.Source;
        var type = incoming.Type;
        var inverseRoot = incoming.InverseRoot;
        var count = Vector<float>.Count;
        for (var t = 0; t < n; t++)
        {
            var first = start[t];
            var last = start[t + 1];
            ref var output = ref Unsafe.Add(ref outBase, (nuint)(t * width));
            var j = 0;
            if (Vector.IsHardwareAccelerated)
            {
                for (; j <= width - (2 * count); j += 2 * count)
                {
                    var a0 = Vector<float>.Zero;
                    var a1 = Vector<float>.Zero;
                    for (var e = first; e < last; e++)
                    {
                        ref var hs = ref Unsafe.Add(ref hBase, (nuint)((source[e] * width) + j));
                        ref var r = ref Unsafe.Add(ref relationBase, (nuint)((type[e] * width) + j));
                        var m0 = Vector.Max(Vector.LoadUnsafe(ref hs) + Vector.LoadUnsafe(ref r), Vector<float>.Zero);
                        var m1 = Vector.Max(Vector.LoadUnsafe(ref hs, (nuint)count) + Vector.LoadUnsafe(ref r, (nuint)count), Vector<float>.Zero);
                        if (weighBySource)
                        {
                            var w = new Vector<float>(inverseRoot[source[e]]);
                            m0 *= w;
                            m1 *= w;
                        }

                        a0 += m0;
                        a1 += m1;
                    }

                    a0.StoreUnsafe(ref output, (nuint)j);
                    a1.StoreUnsafe(ref output, (nuint)(j + count));
                }
            }

            for (; j < width; j++)
            {
                var a = 0f;
                for (var e = first; e < last; e++)
                {
                    var m = Math.Max(Unsafe.Add(ref hBase, (nuint)((source[e] * width) + j)) + Unsafe.Add(ref relationBase, (nuint)((type[e] * width) + j)), 0f);
                    a += weighBySource ? m * inverseRoot[source[e]] : m;
                }

                Unsafe.Add(ref output, (nuint)j) = a;
            }
        }
    }

    /// <summary>head(mean ‖ log(1 + sum)) of the node embeddings.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private float Logit(float[] embeddings, int n, float[] scratch)
    {
        var h = _hidden;
        var pooled = scratch.AsSpan(0, 2 * h);
        var sum = pooled[..h];
        sum.Clear();
        for (var i = 0; i < n; i++)
        {
            MultiplyAdd(1f, embeddings.AsSpan(i * h, h), sum);
        }

        for (var j = 0; j < h; j++)
        {
            pooled[h + j] = MathF.Log(1f + sum[j]);
            sum[j] /= n;
        }

        Span<float> hidden = stackalloc float[h];
        Dense(pooled, _head0T, _head0Bias, hidden);
        Relu(hidden);
        return Dot(hidden, _head2) + _head2Bias;
    }

    /// <summary>The largest per-node mean squared error between decoder(embedding) and the standardised features.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private float WorstReconstruction(float[] x, float[] embeddings, int n, float[] scratch)
    {
        var h = _hidden;
        var f = _features;
        var hidden = scratch.AsSpan(0, n * h);
        DenseRows(embeddings.AsSpan(0, n * h), h, _decoder0T, _decoder0Bias, hidden, h, relu: true);
        var reconstructed = ArrayPool<float>.Shared.Rent(n * f);
        try
        {
            DenseRows(hidden, h, _decoder2T, _decoder2Bias, reconstructed.AsSpan(0, n * f), f, relu: false);
            var worst = 0f;
            for (var i = 0; i < n; i++)
            {
                var error = 0f;
                for (var k = 0; k < f; k++)
                {
                    var difference = reconstructed[(i * f) + k] - ((x[(i * f) + k] - _featureMean[k]) / _featureScale[k]);
                    error += difference * difference;
                }

                worst = Math.Max(worst, error / f);
            }

            return worst;
        }
        finally
        {
            ArrayPool<float>.Shared.Return(reconstructed);
        }
    }

    /// <summary>
    /// Every row of <paramref name="input"/> (rows × <paramref name="inWidth"/>) through one dense layer into
    /// <paramref name="output"/> (rows × <paramref name="width"/>), then relu if asked. Two rows at a time, four vectors
    /// of outputs each: eight independent accumulators keep the multiply-add units busy, where one row's four wait on
    /// each other.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void DenseRows(ReadOnlySpan<float> input, int inWidth, float[] transposed, float[]? bias, Span<float> output, int width, bool relu, bool accumulate = false)
    {
        var rows = output.Length / width;
        if (input.Length < rows * inWidth || transposed.Length < inWidth * width || (bias is not null && bias.Length < width))
        {
            throw new ArgumentException("a dense layer's operands are smaller than its shape", nameof(input));
        }

        var count = Vector<float>.Count;
        var i = 0;
        if (Vector.IsHardwareAccelerated && width % count == 0)
        {
            ref var w = ref MemoryMarshal.GetArrayDataReference(transposed);
            for (; i + 1 < rows; i += 2)
            {
                ref var x0 = ref Unsafe.Add(ref MemoryMarshal.GetReference(input), (nuint)(i * inWidth));
                ref var x1 = ref Unsafe.Add(ref x0, (nuint)inWidth);
                ref var o0 = ref Unsafe.Add(ref MemoryMarshal.GetReference(output), (nuint)(i * width));
                ref var o1 = ref Unsafe.Add(ref o0, (nuint)width);
                var j = 0;
                for (; j <= width - (4 * count); j += 4 * count)
                {
                    Vector<float> a0, a1, a2, a3, b0, b1, b2, b3;
                    if (accumulate)
                    {
                        a0 = Vector.LoadUnsafe(ref o0, (nuint)j);
                        a1 = Vector.LoadUnsafe(ref o0, (nuint)(j + count));
                        a2 = Vector.LoadUnsafe(ref o0, (nuint)(j + (2 * count)));
                        a3 = Vector.LoadUnsafe(ref o0, (nuint)(j + (3 * count)));
                        b0 = Vector.LoadUnsafe(ref o1, (nuint)j);
                        b1 = Vector.LoadUnsafe(ref o1, (nuint)(j + count));
                        b2 = Vector.LoadUnsafe(ref o1, (nuint)(j + (2 * count)));
                        b3 = Vector.LoadUnsafe(ref o1, (nuint)(j + (3 * count)));
                    }
                    else if (bias is not null)
                    {
                        ref var b = ref MemoryMarshal.GetArrayDataReference(bias);
                        a0 = b0 = Vector.LoadUnsafe(ref b, (nuint)j);
                        a1 = b1 = Vector.LoadUnsafe(ref b, (nuint)(j + count));
                        a2 = b2 = Vector.LoadUnsafe(ref b, (nuint)(j + (2 * count)));
                        a3 = b3 = Vector.LoadUnsafe(ref b, (nuint)(j + (3 * count)));
                    }
                    else
                    {
                        a0 = a1 = a2 = a3 = b0 = b1 = b2 = b3 = Vector<float>.Zero;
                    }

                    for (var k = 0; k < inWidth; k++)
                    {
                        ref var row = ref Unsafe.Add(ref w, (nuint)((k * width) + j));
                        var w0 = Vector.LoadUnsafe(ref row);
                        var w1 = Vector.LoadUnsafe(ref row, (nuint)count);
                        var w2 = Vector.LoadUnsafe(ref row, (nuint)(2 * count));
                        var w3 = Vector.LoadUnsafe(ref row, (nuint)(3 * count));
                        var v = new Vector<float>(Unsafe.Add(ref x0, (nuint)k));
                        a0 = Vector.FusedMultiplyAdd(v, w0, a0);
                        a1 = Vector.FusedMultiplyAdd(v, w1, a1);
                        a2 = Vector.FusedMultiplyAdd(v, w2, a2);
                        a3 = Vector.FusedMultiplyAdd(v, w3, a3);
                        v = new Vector<float>(Unsafe.Add(ref x1, (nuint)k));
                        b0 = Vector.FusedMultiplyAdd(v, w0, b0);
                        b1 = Vector.FusedMultiplyAdd(v, w1, b1);
                        b2 = Vector.FusedMultiplyAdd(v, w2, b2);
                        b3 = Vector.FusedMultiplyAdd(v, w3, b3);
                    }

                    if (relu)
                    {
                        a0 = Vector.Max(a0, Vector<float>.Zero);
                        a1 = Vector.Max(a1, Vector<float>.Zero);
                        a2 = Vector.Max(a2, Vector<float>.Zero);
                        a3 = Vector.Max(a3, Vector<float>.Zero);
                        b0 = Vector.Max(b0, Vector<float>.Zero);
                        b1 = Vector.Max(b1, Vector<float>.Zero);
                        b2 = Vector.Max(b2, Vector<float>.Zero);
                        b3 = Vector.Max(b3, Vector<float>.Zero);
                    }

                    a0.StoreUnsafe(ref o0, (nuint)j);
                    a1.StoreUnsafe(ref o0, (nuint)(j + count));
                    a2.StoreUnsafe(ref o0, (nuint)(j + (2 * count)));
                    a3.StoreUnsafe(ref o0, (nuint)(j + (3 * count)));
                    b0.StoreUnsafe(ref o1, (nuint)j);
                    b1.StoreUnsafe(ref o1, (nuint)(j + count));
                    b2.StoreUnsafe(ref o1, (nuint)(j + (2 * count)));
                    b3.StoreUnsafe(ref o1, (nuint)(j + (3 * count)));
                }

                // Widths that are not a multiple of four vectors (the autoencoder's 16, its 56 outputs): one vector at a time.
                for (; j < width; j += count)
                {
                    Vector<float> a, b;
                    if (accumulate)
                    {
                        a = Vector.LoadUnsafe(ref o0, (nuint)j);
                        b = Vector.LoadUnsafe(ref o1, (nuint)j);
                    }
                    else if (bias is not null)
                    {
                        a = b = Vector.LoadUnsafe(ref MemoryMarshal.GetArrayDataReference(bias), (nuint)j);
                    }
                    else
                    {
                        a = b = Vector<float>.Zero;
                    }

                    for (var k = 0; k < inWidth; k++)
                    {
                        var weights = Vector.LoadUnsafe(ref w, (nuint)((k * width) + j));
                        a = Vector.FusedMultiplyAdd(new Vector<float>(Unsafe.Add(ref x0, (nuint)k)), weights, a);
                        b = Vector.FusedMultiplyAdd(new Vector<float>(Unsafe.Add(ref x1, (nuint)k)), weights, b);
                    }

                    if (relu)
                    {
                        a = Vector.Max(a, Vector<float>.Zero);
                        b = Vector.Max(b, Vector<float>.Zero);
                    }

                    a.StoreUnsafe(ref o0, (nuint)j);
                    b.StoreUnsafe(ref o1, (nuint)j);
                }
            }
        }

        for (; i < rows; i++)
        {
            var row = output.Slice(i * width, width);
            Dense(input.Slice(i * inWidth, inWidth), transposed, bias, row, accumulate);
            if (relu)
            {
                Relu(row);
            }
        }
    }

    /// <summary>output = input · Wᵀ + bias (or += when accumulating), W stored transposed (in × out).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dense(ReadOnlySpan<float> input, float[] transposed, float[]? bias, Span<float> output, bool accumulate = false, bool skipZeros = false)
    {
        var width = output.Length;
        if (transposed.Length < input.Length * width || (bias is not null && bias.Length < width))
        {
            throw new ArgumentException("weights smaller than the layer", nameof(transposed));
        }

        if (!accumulate)
        {
            if (bias is null)
            {
                output.Clear();
            }
            else
            {
                bias.AsSpan(0, width).CopyTo(output);
            }
        }

        ref var x = ref MemoryMarshal.GetReference(input);
        ref var w = ref MemoryMarshal.GetArrayDataReference(transposed);
        ref var o = ref MemoryMarshal.GetReference(output);
        var count = Vector<float>.Count;
        var j = 0;
        if (Vector.IsHardwareAccelerated)
        {
            // Four vectors of outputs at a time stay in registers while the inputs stream past.
            for (; j <= width - (4 * count); j += 4 * count)
            {
                var a0 = Vector.LoadUnsafe(ref o, (nuint)j);
                var a1 = Vector.LoadUnsafe(ref o, (nuint)(j + count));
                var a2 = Vector.LoadUnsafe(ref o, (nuint)(j + (2 * count)));
                var a3 = Vector.LoadUnsafe(ref o, (nuint)(j + (3 * count)));
                for (var k = 0; k < input.Length; k++)
                {
                    var value = Unsafe.Add(ref x, k);
                    if (skipZeros && value == 0f)
                    {
                        continue;
                    }

                    var v = new Vector<float>(value);
                    ref var row = ref Unsafe.Add(ref w, (k * width) + j);
                    a0 = Vector.FusedMultiplyAdd(v, Vector.LoadUnsafe(ref row), a0);
                    a1 = Vector.FusedMultiplyAdd(v, Vector.LoadUnsafe(ref row, (nuint)count), a1);
                    a2 = Vector.FusedMultiplyAdd(v, Vector.LoadUnsafe(ref row, (nuint)(2 * count)), a2);
                    a3 = Vector.FusedMultiplyAdd(v, Vector.LoadUnsafe(ref row, (nuint)(3 * count)), a3);
                }

                a0.StoreUnsafe(ref o, (nuint)j);
                a1.StoreUnsafe(ref o, (nuint)(j + count));
                a2.StoreUnsafe(ref o, (nuint)(j + (2 * count)));
                a3.StoreUnsafe(ref o, (nuint)(j + (3 * count)));
            }

            for (; j <= width - count; j += count)
            {
                var a = Vector.LoadUnsafe(ref o, (nuint)j);
                for (var k = 0; k < input.Length; k++)
                {
                    a = Vector.FusedMultiplyAdd(new Vector<float>(Unsafe.Add(ref x, k)), Vector.LoadUnsafe(ref w, (nuint)((k * width) + j)), a);
                }

                a.StoreUnsafe(ref o, (nuint)j);
            }
        }

        for (; j < width; j++)
        {
            var a = Unsafe.Add(ref o, j);
            for (var k = 0; k < input.Length; k++)
            {
                a = MathF.FusedMultiplyAdd(Unsafe.Add(ref x, k), Unsafe.Add(ref w, (k * width) + j), a);
            }

            Unsafe.Add(ref o, j) = a;
        }
    }

    /// <summary>LayerNorm over one row (biased variance), then the learned scale and shift.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void LayerNorm(Span<float> row, float[] weight, float[] bias)
    {
        var width = row.Length;
        if (Vector.IsHardwareAccelerated && width % Vector<float>.Count == 0)
        {
            // A row is a few vectors: summing lanes side by side, rather than one float after another, is most of the speed.
            var vectors = MemoryMarshal.Cast<float, Vector<float>>(row);
            var sum = Vector<float>.Zero;
            foreach (var v in vectors)
            {
                sum += v;
            }

            var mean = new Vector<float>(Vector.Sum(sum) / width);
            var squares = Vector<float>.Zero;
            foreach (var v in vectors)
            {
                var centred = v - mean;
                squares += centred * centred;
            }

            var inverse = new Vector<float>(1f / MathF.Sqrt((Vector.Sum(squares) / width) + NormEpsilon));
            var weights = MemoryMarshal.Cast<float, Vector<float>>(weight.AsSpan(0, width));
            var biases = MemoryMarshal.Cast<float, Vector<float>>(bias.AsSpan(0, width));
            for (var i = 0; i < vectors.Length; i++)
            {
                vectors[i] = ((vectors[i] - mean) * inverse * weights[i]) + biases[i];
            }

            return;
        }

        var scalarMean = 0f;
        foreach (var v in row)
        {
            scalarMean += v;
        }

        scalarMean /= width;
        var variance = 0f;
        foreach (var v in row)
        {
            variance += (v - scalarMean) * (v - scalarMean);
        }

        var scalarInverse = 1f / MathF.Sqrt((variance / width) + NormEpsilon);
        for (var j = 0; j < width; j++)
        {
            row[j] = ((row[j] - scalarMean) * scalarInverse * weight[j]) + bias[j];
        }
    }

    /// <summary>y += a · x.</summary>
    private static void MultiplyAdd(float a, ReadOnlySpan<float> x, Span<float> y)
    {
        var j = 0;
        if (Vector.IsHardwareAccelerated && x.Length >= Vector<float>.Count)
        {
            var va = new Vector<float>(a);
            var xs = MemoryMarshal.Cast<float, Vector<float>>(x);
            var ys = MemoryMarshal.Cast<float, Vector<float>>(y);
            for (var v = 0; v < xs.Length; v++)
            {
                ys[v] += va * xs[v];
            }

            j = xs.Length * Vector<float>.Count;
        }

        for (; j < x.Length; j++)
        {
            y[j] += a * x[j];
        }
    }

    private static void Relu(Span<float> y)
    {
        var j = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var vectors = MemoryMarshal.Cast<float, Vector<float>>(y);
            for (var v = 0; v < vectors.Length; v++)
            {
                vectors[v] = Vector.Max(vectors[v], Vector<float>.Zero);
            }

            j = vectors.Length * Vector<float>.Count;
        }

        for (; j < y.Length; j++)
        {
            y[j] = Math.Max(y[j], 0f);
        }
    }

    private static float Dot(ReadOnlySpan<float> x, ReadOnlySpan<float> y)
    {
        var sum = 0f;
        for (var j = 0; j < x.Length; j++)
        {
            sum += x[j] * y[j];
        }

        return sum;
    }
}
