using System.Globalization;
using System.Text;
using System.Xml;

namespace FaaSMon.Core;

/// <summary>The export formats of a <see cref="ProvenanceGraph"/>.</summary>
public enum GraphFormat
{
    /// <summary>The dataset format (<see cref="ProvenanceGraphJson"/>).</summary>
    Json,

    /// <summary>GraphML for Gephi and yEd: node and edge attributes as typed keys.</summary>
    GraphMl,

    /// <summary>Graphviz DOT: node shapes by kind, edge labels with the system call and count.</summary>
    Dot,
}

/// <summary>
/// Writes graphs as JSON, GraphML or DOT. QuikGraph's own serialisers are not served here, so GraphML goes through
/// <see cref="XmlWriter"/> (which escapes every label and attribute) and DOT through a quoting writer.
/// </summary>
public static class ProvenanceGraphExport
{
    /// <summary>Parses <c>json</c>, <c>graphml</c> or <c>dot</c> (case-insensitive).</summary>
    public static bool TryParseFormat(string? text, out GraphFormat format)
    {
        switch (text?.Trim().ToLowerInvariant())
        {
            case "json":
                format = GraphFormat.Json;
                return true;
            case "graphml":
                format = GraphFormat.GraphMl;
                return true;
            case "dot" or "gv":
                format = GraphFormat.Dot;
                return true;
            default:
                format = default;
                return false;
        }
    }

    public static string ContentType(GraphFormat format) => format switch
    {
        GraphFormat.Json => "application/json",
        GraphFormat.GraphMl => "application/graphml+xml",
        _ => "text/vnd.graphviz",
    };

    public static string Write(ProvenanceGraph graph, GraphFormat format) => format switch
    {
        GraphFormat.Json => ProvenanceGraphJson.Serialize(graph),
        GraphFormat.GraphMl => ToGraphMl(graph),
        _ => ToDot(graph),
    };

    public static string ToGraphMl(ProvenanceGraph graph)
    {
        ArgumentNullException.ThrowIfNull(graph);
        var attributeKeys = graph.Nodes.SelectMany(n => n.Attributes?.Keys ?? []).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        // into UTF-8 bytes, so the declaration says what a file written from the text will hold (a StringBuilder says utf-16)
        var utf8 = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false);
        using var buffer = new MemoryStream();
        using (var xml = XmlWriter.Create(buffer, new XmlWriterSettings { Indent = true, OmitXmlDeclaration = false, Encoding = utf8 }))
        {
            const string ns = "http://graphml.graphdrawing.org/xmlns";
            xml.WriteStartElement("graphml", ns);
            Key(xml, "scope", "graph", "string");
            Key(xml, "callId", "graph", "string");
            Key(xml, "traceId", "graph", "string");
            Key(xml, "function", "graph", "string");
            Key(xml, "graphLabel", "graph", "string");
            Key(xml, "kind", "node", "string");
            Key(xml, "label", "node", "string");
            foreach (var key in attributeKeys)
            {
                Key(xml, "a_" + key, "node", "string", key);
            }

            Key(xml, "edgeKind", "edge", "string");
            Key(xml, "syscall", "edge", "string");
            Key(xml, "count", "edge", "int");
            Key(xml, "firstTimeNs", "edge", "long");
            Key(xml, "lastTimeNs", "edge", "long");
            xml.WriteStartElement("graph");
            xml.WriteAttributeString("id", graph.GraphId);
            xml.WriteAttributeString("edgedefault", "directed");
            Data(xml, "scope", graph.Scope.ToString());
            Data(xml, "callId", graph.CallId);
            Data(xml, "traceId", graph.TraceId);
            Data(xml, "function", graph.Function);
            Data(xml, "graphLabel", graph.Label);
            foreach (var node in graph.Nodes)
            {
                xml.WriteStartElement("node");
                xml.WriteAttributeString("id", "n" + node.Id.ToString(CultureInfo.InvariantCulture));
                Data(xml, "kind", node.Kind.ToString());
                Data(xml, "label", node.Label);
                foreach (var (key, value) in node.Attributes ?? new Dictionary<string, string>())
                {
                    Data(xml, "a_" + key, value);
                }

                xml.WriteEndElement();
            }

            var index = 0;
            foreach (var edge in graph.Edges)
            {
                xml.WriteStartElement("edge");
                xml.WriteAttributeString("id", "e" + (index++).ToString(CultureInfo.InvariantCulture));
                xml.WriteAttributeString("source", "n" + edge.Source.ToString(CultureInfo.InvariantCulture));
                xml.WriteAttributeString("target", "n" + edge.Target.ToString(CultureInfo.InvariantCulture));
                Data(xml, "edgeKind", edge.Kind.ToString());
                Data(xml, "syscall", edge.Syscall);
                Data(xml, "count", edge.Count.ToString(CultureInfo.InvariantCulture));
                Data(xml, "firstTimeNs", edge.FirstTimeNs.ToString(CultureInfo.InvariantCulture));
                Data(xml, "lastTimeNs", edge.LastTimeNs.ToString(CultureInfo.InvariantCulture));
                xml.WriteEndElement();
            }

            xml.WriteEndElement();
            xml.WriteEndElement();
        }

        return utf8.GetString(buffer.ToArray());

        static void Key(XmlWriter xml, string id, string target, string type, string? name = null)
        {
            xml.WriteStartElement("key");
            xml.WriteAttributeString("id", id);
            xml.WriteAttributeString("for", target);
            xml.WriteAttributeString("attr.name", name ?? id);
            xml.WriteAttributeString("attr.type", type);
            xml.WriteEndElement();
        }

        static void Data(XmlWriter xml, string key, string? value)
        {
            if (value is null)
            {
                return;
            }

            xml.WriteStartElement("data");
            xml.WriteAttributeString("key", key);
            xml.WriteString(XmlSafe(value));
            xml.WriteEndElement();
        }
    }

    public static string ToDot(ProvenanceGraph graph)
    {
        ArgumentNullException.ThrowIfNull(graph);
        var dot = new StringBuilder();
        dot.Append("digraph ").Append(Quote(graph.GraphId)).Append(" {\n  rankdir=LR;\n  node [fontname=\"Helvetica\", fontsize=10];\n");
        foreach (var node in graph.Nodes)
        {
            var shape = node.Kind switch
            {
                NodeKind.Process => "box",
                NodeKind.File => "note",
                NodeKind.Socket => "diamond",
                NodeKind.Invocation => "doubleoctagon",
                _ => "component",
            };
            dot.Append("  n").Append(node.Id.ToString(CultureInfo.InvariantCulture))
                .Append(" [shape=").Append(shape).Append(", label=").Append(Quote($"{node.Kind.ToString().ToLowerInvariant()}: {node.Label}")).Append("];\n");
        }

        foreach (var edge in graph.Edges)
        {
            var label = edge.Count > 1 ? $"{edge.Syscall} ×{edge.Count}" : edge.Syscall;
            dot.Append("  n").Append(edge.Source.ToString(CultureInfo.InvariantCulture)).Append(" -> n").Append(edge.Target.ToString(CultureInfo.InvariantCulture))
                .Append(" [label=").Append(Quote(label));
            if (edge.Kind is EdgeKind.Inherits or EdgeKind.Invoke)
            {
                dot.Append(", style=dashed");
            }

            dot.Append("];\n");
        }

        dot.Append("}\n");
        return dot.ToString();
    }

    /// <summary>A DOT string literal: quotes and backslashes escaped, control characters dropped.</summary>
    private static string Quote(string value)
    {
        var s = new StringBuilder(value.Length + 2).Append('"');
        foreach (var c in value)
        {
            switch (c)
            {
                case '"' or '\\':
                    s.Append('\\').Append(c);
                    break;
                case < ' ':
                    s.Append(' ');
                    break;
                default:
                    s.Append(c);
                    break;
            }
        }

        return s.Append('"').ToString();
    }

    /// <summary>XML 1.0 cannot carry most control characters even escaped: paths and argv from a trace may hold them.</summary>
    private static string XmlSafe(string value)
    {
        foreach (var c in value)
        {
            if (!XmlConvert.IsXmlChar(c) && !char.IsSurrogate(c))
            {
                return new string([.. value.Select(ch => XmlConvert.IsXmlChar(ch) || char.IsSurrogate(ch) ? ch : '\uFFFD')]);
            }
        }

        return value;
    }
}
