using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json.Serialization;
using System.Threading.Channels;
using FaaSMon.Core;
using FaaSMon.Monitor.Store;
using Microsoft.Extensions.Logging;

namespace FaaSMon.Monitor.Alerts;

/// <summary>One alert in Falco's JSON output format, so Falcosidekick and the tools behind it take FaaSMon's alerts as they are.</summary>
internal sealed record FalcoAlert(
    [property: JsonPropertyName("time")] DateTimeOffset Time,
    [property: JsonPropertyName("rule")] string Rule,
    [property: JsonPropertyName("priority")] string Priority,
    [property: JsonPropertyName("output")] string Output,
    [property: JsonPropertyName("source")] string Source,
    [property: JsonPropertyName("hostname")] string Hostname,
    [property: JsonPropertyName("tags")] IReadOnlyList<string> Tags,
    [property: JsonPropertyName("output_fields")] IReadOnlyDictionary<string, string?> OutputFields)
{
    /// <summary>The alert for an intrusion verdict: the first rule that fired names it, else the model.</summary>
    public static FalcoAlert For(Verdict verdict, string invocationId, string? instance, DateTimeOffset time)
    {
        ArgumentNullException.ThrowIfNull(verdict);
        var rule = (verdict.RuleHits.Count > 0 ? verdict.RuleHits[0].RuleId : null) ?? $"gnn:{verdict.ModelName ?? "model"}";
        var why = verdict.RuleHits.Count > 0
            ? string.Join("; ", verdict.RuleHits.Select(h => h.Explanation))
            : string.Create(CultureInfo.InvariantCulture, $"model score {verdict.Score:F3}");
        return new FalcoAlert(
            time,
            rule,
            "Critical",
            $"{time:HH:mm:ss.fffffff}: Critical FaaSMon intrusion in function {verdict.Function} (invocation={invocationId} call_id={verdict.CallId} trace_id={verdict.TraceId}): {why}",
            "faasmon",
            Environment.MachineName,
            ["faasmon", "serverless", "openfaas", .. verdict.RuleHits.Select(h => h.RuleId).Distinct(StringComparer.Ordinal)],
            new Dictionary<string, string?>(StringComparer.Ordinal)
            {
                ["faasmon.invocation"] = invocationId,
                ["faasmon.call_id"] = verdict.CallId,
                ["faasmon.trace_id"] = verdict.TraceId,
                ["faasmon.function"] = verdict.Function,
                ["faasmon.instance"] = instance,
                ["faasmon.score"] = verdict.Score?.ToString("F4", CultureInfo.InvariantCulture),
                ["faasmon.model"] = verdict.ModelName,
            });
    }

    /// <summary>The alert for a network window the network model flagged, on the invocation whose flows were in it.</summary>
    public static FalcoAlert ForNetwork(NetworkVerdict verdict, string invocationId, string? callId, string? traceId, string? function, string? instance, DateTimeOffset time)
    {
        ArgumentNullException.ThrowIfNull(verdict);
        return new FalcoAlert(
            time,
            $"network:{verdict.Model}",
            "Critical",
            string.Create(CultureInfo.InvariantCulture,
                $"{time:HH:mm:ss.fffffff}: Critical FaaSMon network intrusion in function {function} (invocation={invocationId} call_id={callId} trace_id={traceId}): " +
                $"the {verdict.WindowSeconds:0.###} s window at {verdict.WindowStart:HH:mm:ss.fff} ({verdict.Edges} flows, {verdict.Flows} of them this invocation's) scored {verdict.Score:F3}"),
            "faasmon",
            Environment.MachineName,
            ["faasmon", "serverless", "openfaas", "network"],
            new Dictionary<string, string?>(StringComparer.Ordinal)
            {
                ["faasmon.invocation"] = invocationId,
                ["faasmon.call_id"] = callId,
                ["faasmon.trace_id"] = traceId,
                ["faasmon.function"] = function,
                ["faasmon.instance"] = instance,
                ["faasmon.score"] = verdict.Score.ToString("F4", CultureInfo.InvariantCulture),
                ["faasmon.model"] = verdict.Model,
                ["faasmon.network.window"] = verdict.WindowStart.ToString("O", CultureInfo.InvariantCulture),
            });
    }
}

/// <summary>
/// Posts alerts to a webhook from a bounded queue, so a slow or dead receiver never holds up verdicts. A failed post is
/// retried twice, then dropped and counted.
/// </summary>
internal sealed partial class FalcoWebhook : IAsyncDisposable
{
    private readonly Channel<FalcoAlert> _queue = Channel.CreateBounded<FalcoAlert>(new BoundedChannelOptions(1024) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly HttpClient _http;
    private readonly Uri _target;
    private readonly ILogger _logger;
    private readonly Task _sender;
    private long _sent;
    private long _dropped;

    public FalcoWebhook(Uri target, ILogger logger, HttpMessageHandler? handler = null)
    {
        _target = target;
        _logger = logger;
        _http = handler is null ? new HttpClient() : new HttpClient(handler);
        _http.Timeout = TimeSpan.FromSeconds(5);
        _sender = Task.Run(SendAllAsync);
    }

    public long Sent => Interlocked.Read(ref _sent);

    public long Dropped => Interlocked.Read(ref _dropped);

    public void Post(FalcoAlert alert)
    {
        if (!_queue.Writer.TryWrite(alert))
        {
            Interlocked.Increment(ref _dropped);
        }
    }

    private async Task SendAllAsync()
    {
        await foreach (var alert in _queue.Reader.ReadAllAsync())
        {
            for (var attempt = 1; ; attempt++)
            {
                try
                {
                    using var response = await _http.PostAsJsonAsync(_target, alert);
                    response.EnsureSuccessStatusCode();
                    Interlocked.Increment(ref _sent);
                    break;
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
                {
                    if (attempt == 3)
                    {
                        Interlocked.Increment(ref _dropped);
                        LogDropped(_logger, _target, e.Message);
                        break;
                    }

                    await Task.Delay(TimeSpan.FromMilliseconds(200 * attempt));
                }
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await _sender.WaitAsync(TimeSpan.FromSeconds(10)).ContinueWith(_ => { }, TaskScheduler.Default);
        _http.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "alert not delivered to {Target}: {Reason}")]
    private static partial void LogDropped(ILogger logger, Uri target, string reason);
}
