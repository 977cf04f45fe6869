using FaaSMon.Core;

namespace FaaSMon.Classifier.Temporal;

/// <summary>
/// A <see cref="TemporalGraph"/> as arrays for the temporal models. Node features: port class one-hot (none / well-known /
/// registered / ephemeral) and log(1+out/in degree): nothing that names an address, so no model can learn "this IP is the
/// attacker". Edge features: protocol one-hot, log(1+packets, bytes each way, duration in ms), the share of packets with
/// each TCP flag, log(1+ARP requests, replies). For TGAT each edge endpoint at the edge's time has its temporal
/// neighbourhood: the <see cref="Neighbours"/> most recent edges of that node that started strictly before.
/// </summary>
internal sealed class TemporalFeatures
{
    public const int LayoutVersion = 1;
    public const int NodeFeatureCount = 6;
    public const int EdgeFeatureCount = 17;
    public const int Neighbours = 10;

    private TemporalFeatures(int nodeCount, float[] nodeX, float[] edgeX, long[] source, long[] target, float[] timeMs)
    {
        NodeCount = nodeCount;
        NodeX = nodeX;
        EdgeX = edgeX;
        Source = source;
        Target = target;
        TimeMs = timeMs;
    }

    public int NodeCount { get; }

    public int EdgeCount => Source.Length;

    public float[] NodeX { get; }

    public float[] EdgeX { get; }

    public long[] Source { get; }

    public long[] Target { get; }

    /// <summary>Edge start, milliseconds after the window start; edges are in this order.</summary>
    public float[] TimeMs { get; }

    public static TemporalFeatures From(TemporalGraph graph)
    {
        var edges = graph.Edges.OrderBy(e => e.StartSeconds).ToList();
        var n = graph.Nodes.Count;
        var nodeX = new float[n * NodeFeatureCount];
        var outDegree = new int[n];
        var inDegree = new int[n];
        foreach (var e in edges)
        {
            outDegree[e.Source]++;
            inDegree[e.Target]++;
        }

        for (var i = 0; i < n; i++)
        {
            var name = graph.Nodes[i];
            var colon = name.LastIndexOf(':');
            var port = colon >= 0 && int.TryParse(name.AsSpan(colon + 1), System.Globalization.CultureInfo.InvariantCulture, out var p) ? p : 0;
            var portClass = port == 0 ? 0 : port < 1024 ? 1 : port < 49152 ? 2 : 3;
            nodeX[(i * NodeFeatureCount) + portClass] = 1;
            nodeX[(i * NodeFeatureCount) + 4] = MathF.Log(1 + outDegree[i]);
            nodeX[(i * NodeFeatureCount) + 5] = MathF.Log(1 + inDegree[i]);
        }

        var edgeX = new float[edges.Count * EdgeFeatureCount];
        var source = new long[edges.Count];
        var target = new long[edges.Count];
        var time = new float[edges.Count];
        for (var k = 0; k < edges.Count; k++)
        {
            var e = edges[k];
            source[k] = e.Source;
            target[k] = e.Target;
            time[k] = (float)(e.StartSeconds * 1000);
            var row = edgeX.AsSpan(k * EdgeFeatureCount, EdgeFeatureCount);
            row[(int)e.Protocol] = 1;
            row[5] = Log(e.Packets);
            row[6] = Log(e.Bytes);
            row[7] = Log(e.PacketsBack);
            row[8] = Log(e.BytesBack);
            row[9] = Log(e.DurationSeconds * 1000);
            var packets = Math.Max(1, e.Packets + e.PacketsBack);
            var flags = e.Flags ?? TcpFlagCounts.None;
            row[10] = flags.Syn / (float)packets;
            row[11] = flags.Ack / (float)packets;
            row[12] = flags.Fin / (float)packets;
            row[13] = flags.Rst / (float)packets;
            row[14] = flags.Psh / (float)packets;
            row[15] = Log(e.ArpRequests);
            row[16] = Log(e.ArpReplies);
        }

        return new TemporalFeatures(n, nodeX, edgeX, source, target, time);
    }

    private static float Log(double value) => (float)Math.Log(1 + Math.Max(0, value));
}

/// <summary>A sample with its ground truth.</summary>
internal sealed record LabeledTemporalGraph(TemporalFeatures Features, bool IsAttack, string Family);
