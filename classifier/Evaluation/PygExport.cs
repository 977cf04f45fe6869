using System.Globalization;
using System.IO.Compression;
using System.Text;
using FaaSMon.Classifier.Features;

namespace FaaSMon.Classifier.Evaluation;

/// <summary>
/// Writes a dataset as one NumPy <c>.npz</c> that PyTorch Geometric takes without FaaSMon, so the same graphs can be run
/// through a PyG model for comparison. Arrays: <c>x</c> float32 (N, F) node features (layout version 1, unstandardised);
/// <c>edge_index</c> int64 (2, E) as recorded (source → target; add reverses yourself); <c>edge_type</c> int64 (E), the
/// EdgeKind number; <c>node_ptr</c>, <c>edge_ptr</c> int64 (G + 1) where each graph's nodes and edges start; <c>y</c> int64 (G)
/// 1 = attack; <c>family</c> int64 (G) indexing <c>families</c> (unicode). Edge indices are local to their graph:
/// <code>
/// d = numpy.load("data.npz"); graphs = []
/// for g in range(len(d["y"])):
///     n0, n1, e0, e1 = d["node_ptr"][g], d["node_ptr"][g+1], d["edge_ptr"][g], d["edge_ptr"][g+1]
///     graphs.append(Data(x=torch.from_numpy(d["x"][n0:n1]), edge_index=torch.from_numpy(d["edge_index"][:, e0:e1]),
///                        edge_type=torch.from_numpy(d["edge_type"][e0:e1]), y=torch.tensor([d["y"][g]])))
/// </code>
/// </summary>
internal static class PygExport
{
    public static void Write(string path, IReadOnlyList<DatasetGraph> dataset)
    {
        var features = dataset.Select(d => GraphFeatures.From(d.Graph)).ToList();
        var families = dataset.Select(d => d.Label).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        var nodes = features.Sum(f => f.NodeCount);
        var edges = features.Sum(f => f.Source.Length / 2);
        var x = new float[nodes * GraphFeatures.FeatureCount];
        var edgeIndex = new long[2 * edges];
        var edgeType = new long[edges];
        var nodePtr = new long[features.Count + 1];
        var edgePtr = new long[features.Count + 1];
        int n = 0, e = 0;
        for (var g = 0; g < features.Count; g++)
        {
            var graph = features[g];
            nodePtr[g] = n;
            edgePtr[g] = e;
            graph.X.CopyTo(x, n * GraphFeatures.FeatureCount);
            // GraphFeatures stores every edge forwards then reversed; export the recorded direction only.
            for (var k = 0; k < graph.Source.Length; k += 2)
            {
                edgeIndex[e] = graph.Source[k];
                edgeIndex[edges + e] = graph.Target[k];
                edgeType[e] = graph.EdgeType[k];
                e++;
            }

            n += graph.NodeCount;
        }

        nodePtr[^1] = n;
        edgePtr[^1] = e;
        using var zip = ZipFile.Open(path, ZipArchiveMode.Create);
        Add(zip, "x", "<f4", [nodes, GraphFeatures.FeatureCount], MemoryOf(x));
        Add(zip, "edge_index", "<i8", [2, edges], MemoryOf(edgeIndex));
        Add(zip, "edge_type", "<i8", [edges], MemoryOf(edgeType));
        Add(zip, "node_ptr", "<i8", [nodePtr.Length], MemoryOf(nodePtr));
        Add(zip, "edge_ptr", "<i8", [edgePtr.Length], MemoryOf(edgePtr));
        Add(zip, "y", "<i8", [dataset.Count], MemoryOf(dataset.Select(d => d.IsAttack ? 1L : 0L).ToArray()));
        Add(zip, "family", "<i8", [dataset.Count], MemoryOf(dataset.Select(d => (long)families.IndexOf(d.Label)).ToArray()));
        var width = Math.Max(1, families.Max(f => f.Length));
        var text = new byte[families.Count * width * 4];
        for (var i = 0; i < families.Count; i++)
        {
            Encoding.UTF32.GetBytes(families[i], 0, families[i].Length, text, i * width * 4);
        }

        Add(zip, "families", $"<U{width}", [families.Count], text);
    }

    private static byte[] MemoryOf<T>(T[] values) where T : unmanaged =>
        System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray();

    /// <summary>One .npy (format 1.0) entry: magic, header padded to 64 bytes, little-endian C-order data.</summary>
    private static void Add(ZipArchive zip, string name, string dtype, long[] shape, byte[] data)
    {
        var dimensions = shape.Length == 1 ? $"{shape[0]}," : string.Join(", ", shape.Select(s => s.ToString(CultureInfo.InvariantCulture)));
        var header = $"{{'descr': '{dtype}', 'fortran_order': False, 'shape': ({dimensions}), }}";
        var padded = header.PadRight(((10 + header.Length + 1 + 63) / 64 * 64) - 10 - 1) + "\n";
        using var stream = zip.CreateEntry(name + ".npy", CompressionLevel.Fastest).Open();
        stream.Write([0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0, (byte)padded.Length, (byte)(padded.Length >> 8)]);
        stream.Write(Encoding.ASCII.GetBytes(padded));
        stream.Write(data);
    }
}
