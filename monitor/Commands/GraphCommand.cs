using System.CommandLine;
using FaaSMon.Core;

namespace FaaSMon.Monitor.Commands;

/// <summary><c>faasmon graph</c>: one invocation's (or its trace's) provenance graph from a dataset, as JSON, GraphML or DOT.</summary>
internal static class GraphCommand
{
    private static readonly Option<string> CallIdOption = new("--call-id") { Description = "The X-Call-Id of the invocation.", Required = true };

    private static readonly Option<string> Format = new("--format") { Description = "json, graphml or dot.", DefaultValueFactory = _ => "json" };

    private static readonly Option<DirectoryInfo> Data = new("--data") { Description = "Dataset directory written by faasmon collect.", Required = true };

    private static readonly Option<string?> Function = new("--function") { Description = "The function, when several hops of a chain share the call id." };

    private static readonly Option<bool> Trace = new("--trace") { Description = "The graph of the whole trace the call belongs to." };

    private static readonly Option<FileInfo?> Out = new("--out", "-o") { Description = "File to write (default: standard output)." };

    public static Command Create()
    {
        Format.AcceptOnlyFromAmong("json", "graphml", "dot");
        CallIdOption.Validators.Add(r =>
        {
            if (!CallId.IsValid(r.GetValueOrDefault<string>() ?? ""))
            {
                r.AddError($"--call-id must be 1..{CallId.MaxLength} visible ASCII characters");
            }
        });
        var command = new Command("graph", "Print the provenance graph of one invocation (or of its trace, --trace) as JSON, GraphML (Gephi, yEd) or DOT (Graphviz).")
        {
            CallIdOption, Format, Data, Function, Trace, Out,
        };
        command.SetAction(async (parse, ct) =>
        {
            var data = parse.GetValue(Data)!;
            if (!data.Exists)
            {
                await Console.Error.WriteLineAsync($"faasmon graph: no dataset at {data.FullName}");
                return 2;
            }

            _ = ProvenanceGraphExport.TryParseFormat(parse.GetValue(Format), out var format);
            var callId = parse.GetValue(CallIdOption)!;
            var function = parse.GetValue(Function);
            var trace = parse.GetValue(Trace);
            var matches = new List<ProvenanceGraph>();
            var unreadable = 0;
            foreach (var file in Directory.EnumerateFiles(data.FullName, "*.json", SearchOption.AllDirectories))
            {
                if (Path.GetFileName(file) == "manifest.json")
                {
                    continue;
                }

                ProvenanceGraph graph;
                try
                {
                    graph = ProvenanceGraphJson.Deserialize(await File.ReadAllTextAsync(file, ct));
                }
                catch (InvalidDataException)
                {
                    unreadable++;
                    continue;
                }

                if (graph.CallId == callId && (graph.Scope == GraphScope.Trace) == trace && (function is null || graph.Function == function))
                {
                    matches.Add(graph);
                }
            }

            if (matches.Count == 0)
            {
                await Console.Error.WriteLineAsync($"faasmon graph: no {(trace ? "trace" : "invocation")} graph with call id {callId}{(function is null ? "" : $" and function {function}")} in {data.FullName}" +
                    (unreadable > 0 ? $" ({unreadable} files were not graphs)" : ""));
                return 1;
            }

            if (matches.Count > 1)
            {
                await Console.Error.WriteLineAsync($"faasmon graph: {matches.Count} graphs share call id {callId} (the hops of one chain); choose one with --function: " +
                    string.Join(", ", matches.Select(m => m.Function).Distinct()));
                return 1;
            }

            var text = ProvenanceGraphExport.Write(matches[0], format);
            if (parse.GetValue(Out) is { } outFile)
            {
                await File.WriteAllTextAsync(outFile.FullName, text, ct);
            }
            else
            {
                Console.Out.Write(text);
                Console.Out.WriteLine();
            }

            return 0;
        });
        return command;
    }
}
