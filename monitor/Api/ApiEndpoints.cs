using System.Buffers.Text;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using FaaSMon.Core;
using FaaSMon.Monitor.Store;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace FaaSMon.Monitor.Api;

/// <summary>
/// The verdict API (<c>/api</c>): invocations with their verdicts, graphs, pcaps and traces. Every parameter is checked
/// before it reaches the store: a wrong one is a 400 that says which and why, an unknown id a 404.
/// </summary>
internal static partial class ApiEndpoints
{
    public const int MaxLimit = 500;

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull,
    };

    public static RouteGroupBuilder MapVerdictApi(this IEndpointRouteBuilder app, VerdictStore store)
    {
        var api = app.MapGroup("/api");
        api.MapGet("/invocations", (HttpRequest request) => List(store, request));
        api.MapGet("/invocations/{reference}", (string reference) => Detail(store, reference));
        api.MapGet("/invocations/{reference}/graph", (string reference, string? format) => Graph(store, reference, format));
        api.MapGet("/invocations/{reference}/pcap", (string reference) => Pcap(store, reference));
        api.MapGet("/traces/{traceId}", (string traceId) => Trace(store, traceId));
        return api;
    }

    private static IResult List(VerdictStore store, HttpRequest request)
    {
        var q = request.Query;
        foreach (var key in q.Keys)
        {
            if (key is not ("function" or "verdict" or "since" or "limit" or "cursor"))
            {
                return Bad($"unknown parameter '{Clip(key)}': use function, verdict, since, limit, cursor");
            }

            if (q[key].Count > 1)
            {
                return Bad($"'{key}' given more than once");
            }
        }

        string? function = q["function"];
        if (function is { Length: 0 })
        {
            function = null;
        }

        if (function is not null && !FunctionName().IsMatch(function))
        {
            return Bad("function: a function name is 1–63 lowercase letters, digits and '-'");
        }

        string? verdict = q["verdict"];
        if (verdict is { Length: 0 })
        {
            verdict = null;
        }

        if (verdict is not (null or "intrusion" or "benign" or "pending"))
        {
            return Bad("verdict: intrusion, benign or pending");
        }

        DateTimeOffset? since = null;
        if (q["since"].ToString() is { Length: > 0 } s)
        {
            if (!DateTimeOffset.TryParse(s, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var parsed))
            {
                return Bad("since: an ISO 8601 time, e.g. 2026-12-01T21:00:00Z");
            }

            since = parsed;
        }

        var limit = 50;
        if (q["limit"].ToString() is { Length: > 0 } l && (!int.TryParse(l, NumberStyles.None, CultureInfo.InvariantCulture, out limit) || limit is < 1 or > MaxLimit))
        {
            return Bad($"limit: a whole number from 1 to {MaxLimit}");
        }

        (long, string)? cursor = null;
        if (q["cursor"].ToString() is { Length: > 0 } c)
        {
            if (DecodeCursor(c) is not { } decoded)
            {
                return Bad("cursor: not a cursor this API gave out (use the 'next' of the previous page)");
            }

            cursor = decoded;
        }

        var page = store.List(new InvocationQuery(function, verdict, since, limit, cursor));
        return Results.Json(new { items = page.Items, next = page.Next is { } n ? EncodeCursor(n) : null }, Json);
    }

    private static IResult Detail(VerdictStore store, string reference)
    {
        if (Find(store, reference, out var error) is not { } found)
        {
            return error!;
        }

        var id = found.Summary.Id;
        var links = new JsonObject
        {
            ["graph"] = $"/api/invocations/{id}/graph",
            ["snapshots"] = $"/api/invocations/{id}/snapshots",
        };
        if (store.Slices(id).Count > 0)
        {
            links["pcap"] = $"/api/invocations/{id}/pcap";
        }

        if (found.Summary.TraceId is { } traceId)
        {
            links["trace"] = $"/api/traces/{traceId}";
        }

        var body = new JsonObject
        {
            ["invocation"] = JsonSerializer.SerializeToNode(found.Summary, Json),
            ["hops"] = new JsonArray([.. found.Hops.Select(h => (JsonNode)h)]),
            ["links"] = links,
        };
        if (found.RecordJson is { } record)
        {
            body["record"] = JsonNode.Parse(record);
        }

        if (found.VerdictJson is { } verdict)
        {
            body["verdict"] = JsonNode.Parse(verdict);
        }

        if (store.NetworkVerdicts(id) is { Count: > 0 } windows)
        {
            body["network"] = new JsonObject
            {
                ["verdict"] = found.Summary.Network,
                ["windows"] = JsonSerializer.SerializeToNode(windows, Json),
            };
        }

        return Results.Text(body.ToJsonString(), "application/json; charset=utf-8");
    }

    private static IResult Graph(VerdictStore store, string reference, string? format)
    {
        format ??= "json";
        if (format is not ("json" or "graphml" or "dot"))
        {
            return Bad("format: json, graphml or dot");
        }

        if (Find(store, reference, out var error) is not { } found)
        {
            return error!;
        }

        ProvenanceGraph graph;
        if (store.GraphPath(found.Summary) is { } path)
        {
            if (format == "json")
            {
                return Results.File(path, "application/json; charset=utf-8", $"{found.Summary.Id}.json");
            }

            graph = ProvenanceGraphJson.Deserialize(File.ReadAllText(path));
        }
        else if (store.ProvisionalGraph(found.Summary.Id) is { } provisional)
        {
            if (format == "json")
            {
                return Results.Text(ProvenanceGraphJson.Serialize(provisional), "application/json; charset=utf-8");
            }

            graph = provisional;
        }
        else
        {
            return NotFound(found.Summary.Verdict == "pending"
                ? $"invocation {found.Summary.Id} has no graph yet (its verdict is pending)"
                : $"the graph of invocation {found.Summary.Id} is no longer kept");
        }

        return format == "dot"
            ? Results.Text(ProvenanceGraphExport.ToDot(graph), "text/vnd.graphviz; charset=utf-8")
            : Results.Text(ProvenanceGraphExport.ToGraphMl(graph), "application/graphml+xml; charset=utf-8");
    }

    private static IResult Pcap(VerdictStore store, string reference)
    {
        if (Find(store, reference, out var error) is not { } found)
        {
            return error!;
        }

        var slices = store.Slices(found.Summary.Id);
        var output = new MemoryStream();
        foreach (var (file, offset, length) in slices)
        {
            if (!file.EndsWith(".pcap", StringComparison.Ordinal) || !File.Exists(file) || length > 64 * 1024 * 1024)
            {
                continue;
            }

            using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            if (stream.Length < 24 + offset + length)
            {
                continue; // the bundle was rotated away or cut short
            }

            var header = new byte[24];
            stream.ReadExactly(header);
            if (output.Length == 0)
            {
                output.Write(header);
            }

            stream.Position = 24 + offset;
            var bytes = new byte[length];
            stream.ReadExactly(bytes);
            output.Write(bytes);
        }

        return output.Length == 0
            ? NotFound($"no packets are kept for invocation {found.Summary.Id}")
            : Results.File(output.ToArray(), "application/vnd.tcpdump.pcap", $"{found.Summary.Id}.pcap");
    }

    private static IResult Trace(VerdictStore store, string traceId)
    {
        if (!TraceIdPattern().IsMatch(traceId))
        {
            return Bad("trace id: 32 lowercase hex digits");
        }

        var members = store.Trace(traceId);
        if (members.Count == 0)
        {
            return NotFound($"no invocation of trace {traceId} is stored");
        }

        var byId = members.ToDictionary(m => m.Id, StringComparer.Ordinal);
        var byGraph = members.Where(m => m.GraphId is not null).GroupBy(m => m.GraphId!, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.First().Id, StringComparer.Ordinal);
        var calls = new List<object>();
        foreach (var member in members)
        {
            if (member.ParentId is { } parent && byId.ContainsKey(parent) && member.TraceId == traceId)
            {
                calls.Add(new { from = parent, to = member.Id, untraced = false });
            }
            else if (member.CallerGraphId is { } caller && byGraph.TryGetValue(caller, out var from))
            {
                calls.Add(new { from, to = member.Id, untraced = member.TraceId != traceId });
            }
        }

        return Results.Json(new { traceId, invocations = members, calls, intrusion = members.Any(m => m.Verdict == "intrusion") }, Json);
    }

    private static StoredInvocation? Find(VerdictStore store, string reference, out IResult? error)
    {
        if (!Reference().IsMatch(reference))
        {
            error = Bad("invocation: an id or call id is 1–200 letters, digits, '-', '_' or '.'");
            return null;
        }

        var found = store.Find(reference);
        error = found is null ? NotFound($"no invocation {reference}") : null;
        return found;
    }

    private static string EncodeCursor((long StartedMs, string Id) cursor) =>
        Base64Url.EncodeToString(Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture, $"{cursor.StartedMs}:{cursor.Id}")));

    private static (long, string)? DecodeCursor(string text)
    {
        if (text.Length > 400)
        {
            return null;
        }

        try
        {
            var decoded = Encoding.UTF8.GetString(Base64Url.DecodeFromChars(text));
            var colon = decoded.IndexOf(':', StringComparison.Ordinal);
            return colon > 0 && long.TryParse(decoded.AsSpan(0, colon), NumberStyles.None, CultureInfo.InvariantCulture, out var ms)
                && Reference().IsMatch(decoded[(colon + 1)..])
                ? (ms, decoded[(colon + 1)..])
                : null;
        }
        catch (FormatException)
        {
            return null;
        }
    }

    private static IResult Bad(string message) => Results.Json(new { error = message }, Json, statusCode: StatusCodes.Status400BadRequest);

    private static IResult NotFound(string message) => Results.Json(new { error = message }, Json, statusCode: StatusCodes.Status404NotFound);

    private static string Clip(string text) => text.Length <= 40 ? text : text[..40] + "…";

    [GeneratedRegex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
    private static partial Regex FunctionName();

    [GeneratedRegex("^[A-Za-z0-9_.-]{1,200}$")]
    private static partial Regex Reference();

    [GeneratedRegex("^[0-9a-f]{32}$")]
    private static partial Regex TraceIdPattern();
}
