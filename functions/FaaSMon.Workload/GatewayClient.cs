using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;

namespace FaaSMon.Workload;

/// <summary>A request to one function through the gateway.</summary>
/// <param name="PathAndQuery">The function-relative path (<c>/</c>, <c>/products?category=x</c>), already escaped.</param>
/// <param name="Body">Serialized as JSON when present.</param>
internal sealed record GatewayRequest(string Function, HttpMethod Method, string PathAndQuery, object? Body = null)
{
    public string GatewayPath => PathAndQuery == "/" ? $"/function/{Function}" : $"/function/{Function}{PathAndQuery}";

    public static GatewayRequest Get(string function, string pathAndQuery) => new(function, HttpMethod.Get, pathAndQuery);

    public static GatewayRequest Post(string function, string path, object body) => new(function, HttpMethod.Post, path, body);
}

/// <summary>How a request is labelled in the ground truth.</summary>
internal sealed record RequestLabel(string Label, string? AttackId = null, string? Step = null, string? AffectedBy = null)
{
    public const string BenignLabel = "benign";

    public static RequestLabel Benign { get; } = new(BenignLabel);
}

/// <summary>The gateway's answer; <see cref="Status"/> 0 when none arrived.</summary>
internal sealed record GatewayResponse(int Status, string Body, TraceContext Trace, string? Error)
{
    public bool IsSuccess => Status is >= 200 and < 300;

    /// <summary>Parses the body as JSON, or null when it is not JSON.</summary>
    public JsonElement? Json()
    {
        try
        {
            using var document = JsonDocument.Parse(Body);
            return document.RootElement.Clone();
        }
        catch (JsonException)
        {
            return null;
        }
    }

    public override string ToString() => Error is null ? $"{Status}" : $"{Status} ({Error})";
}

/// <summary>
/// Sends requests to the gateway, each with a fresh X-Call-Id and a new W3C trace, and writes one ground-truth line per
/// request once its answer (or failure) is known.
/// </summary>
internal sealed partial class GatewayClient(HttpClient http, Uri gateway, GroundTruthWriter groundTruth, TimeSpan timeout, ILogger logger)
{
    /// <summary>Tampering attacks register their nonce here so that any benign read returning their data is marked.</summary>
    private readonly Dictionary<string, string> tamperingNonces = [];
    private readonly Lock tamperingLock = new();

    public Uri Gateway { get; } = gateway;

    public void RegisterTampering(string nonce, string attackId)
    {
        lock (tamperingLock)
        {
            tamperingNonces[nonce] = attackId;
        }
    }

    public async Task<GatewayResponse> SendAsync(GatewayRequest request, RequestLabel label, CancellationToken ct)
    {
        var trace = TraceContext.NewRoot();
        var sentAt = DateTimeOffset.UtcNow;
        var response = await ExchangeAsync(request, trace, ct);

        if (label.Label == RequestLabel.BenignLabel && label.AffectedBy is null && IsTampered(response.Body, out var tamperingAttack))
        {
            label = label with { AffectedBy = AttackFamily.Tampering, AttackId = label.AttackId ?? tamperingAttack };
        }

        await groundTruth.WriteAsync(
            new GroundTruthLine(
                sentAt,
                trace.CallId,
                trace.TraceId,
                trace.SpanId,
                request.Function,
                request.Method.Method,
                request.GatewayPath,
                response.Status,
                label.Label,
                label.AttackId,
                label.Step,
                label.AffectedBy,
                response.Error),
            ct);
        LogRequest(logger, label.Label, request.Method.Method, request.Function, response.Status, trace.CallId);
        return response;
    }

    /// <summary>One request, bounded by the per-request timeout; a timeout or connection error is an answer, not an exception.</summary>
    private async Task<GatewayResponse> ExchangeAsync(GatewayRequest request, TraceContext trace, CancellationToken ct)
    {
        using var message = new HttpRequestMessage(request.Method, new Uri(Gateway.AbsoluteUri.TrimEnd('/') + request.GatewayPath));
        message.Headers.Add("X-Call-Id", trace.CallId);
        message.Headers.Add("traceparent", trace.Traceparent);
        message.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        if (request.Body is not null)
        {
            message.Content = new StringContent(
                JsonSerializer.Serialize(request.Body, GroundTruthWriter.JsonOptions), Encoding.UTF8, "application/json");
        }

        using var timeoutCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeoutCts.CancelAfter(timeout);
        var started = Stopwatch.GetTimestamp();
        try
        {
            using var response = await http.SendAsync(message, HttpCompletionOption.ResponseContentRead, timeoutCts.Token);
            var body = await response.Content.ReadAsStringAsync(timeoutCts.Token);
            return new GatewayResponse((int)response.StatusCode, body, trace, null);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return new GatewayResponse(0, "", trace, $"timeout after {Stopwatch.GetElapsedTime(started).TotalSeconds:F1}s");
        }
        catch (HttpRequestException ex)
        {
            return new GatewayResponse(0, "", trace, ex.Message);
        }
    }

    /// <summary>
    /// True when the answer carries a tampered product; <paramref name="attackId"/> names this run's attack when the nonce
    /// is one of ours, and stays null when an earlier run tampered the still-warm cache (still not the function's own data).
    /// </summary>
    private bool IsTampered(string body, out string? attackId)
    {
        attackId = null;
        if (!body.Contains("\"tampered\"", StringComparison.Ordinal))
        {
            return false;
        }

        lock (tamperingLock)
        {
            foreach (var (nonce, id) in tamperingNonces)
            {
                if (body.Contains(nonce, StringComparison.Ordinal))
                {
                    attackId = id;
                    break;
                }
            }
        }

        return true;
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "{Label} {Method} {Function} -> {Status} (call {CallId})")]
    private static partial void LogRequest(ILogger logger, string label, string method, string function, int status, string callId);
}
