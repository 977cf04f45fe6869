using System.Diagnostics;
using System.Text;
using FaaSMon.Core;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FaaSMon.Proxy;

/// <summary>
/// The per-request step in front of YARP's forwarder: stamps the call id and trace context on request and
/// response, tees a bounded prefix of both bodies, and publishes one <see cref="InvocationRecord"/> per request.
/// Nothing here waits on a subscriber.
/// </summary>
internal sealed partial class InvocationPipeline(
    RecordStream<InvocationRecord> records,
    ProxyMetrics metrics,
    CaptureStatus capture,
    IOptions<ProxyOptions> options,
    ILogger<InvocationPipeline> logger)
{
    private const int MaxRecordedHeaders = 64;
    private const int MaxRecordedHeaderValue = 256;
    private static readonly double NanosecondsPerTick = 1e9 / Stopwatch.Frequency;

    private static readonly System.Buffers.SearchValues<char> FunctionNameChars =
        System.Buffers.SearchValues.Create("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.");

    private readonly ProxyOptions _options = options.Value;

    /// <summary>CLOCK_MONOTONIC nanoseconds on Linux (Stopwatch reads that clock), comparable with bpftrace's nsecs.</summary>
    public static long MonotonicNanoseconds(long timestamp) => (long)(timestamp * NanosecondsPerTick);

    public async Task InvokeAsync(HttpContext context, Func<Task> next)
    {
        var startTicks = Stopwatch.GetTimestamp();
        var startUtc = DateTimeOffset.UtcNow;
        var request = context.Request;
        if (request.Path == "/healthz" && _options.Pcap.Enabled && !capture.Running)
        {
            // The gateway's /healthz passes through unchanged, unless this proxy cannot do its job.
            await RefuseAsync(context, StatusCodes.Status503ServiceUnavailable, "faasmon proxy: packet capture not running", "unhealthy");
            return;
        }

        var function = FunctionName(request.Path);

        var identity = HopIdentity.Resolve(request.Headers[CallId.HeaderName], request.Headers[TraceParent.HeaderName],
            request.Headers[TraceParent.StateHeaderName], out var error);
        if (identity is null)
        {
            LogRefused(logger, request.Method, Truncate(request.Path.Value, 200), error!);
            await RefuseAsync(context, StatusCodes.Status400BadRequest, error!, "bad-call-id");
            Publish(context, function, new HopIdentity(CallId.New(), TraceParent.NewRoot(), null, null, ""), startTicks, startUtc, 0, null, null, "bad-call-id");
            return;
        }

        var traceParent = identity.Hop.ToString(); // formatted once, for the request and the response
        request.Headers[CallId.HeaderName] = identity.CallId;
        request.Headers[TraceParent.HeaderName] = traceParent;
        request.Headers[TraceParent.StateHeaderName] = identity.TraceState;
        context.Response.OnStarting(static state =>
        {
            var (response, id, hop) = ((HttpResponse, HopIdentity, string))state;
            response.Headers[CallId.HeaderName] = id.CallId;
            response.Headers[TraceParent.HeaderName] = hop;
            response.Headers[TraceParent.StateHeaderName] = id.TraceState;
            return Task.CompletedTask;
        }, (context.Response, identity, traceParent));

        if (request.ContentLength > _options.MaxRequestBodyBytes)
        {
            await RefuseAsync(context, StatusCodes.Status413PayloadTooLarge, $"request body over {_options.MaxRequestBodyBytes} bytes", "body-too-large");
            Publish(context, function, identity, startTicks, startUtc, 0, null, null, "body-too-large");
            return;
        }

        if (_options.FailClosed && !CanMonitor(out var why))
        {
            await RefuseAsync(context, StatusCodes.Status503ServiceUnavailable, $"monitoring unavailable: {why}", "fail-closed");
            Publish(context, function, identity, startTicks, startUtc, 0, null, null, $"rejected: {why}");
            return;
        }

        if (function is not null)
        {
            metrics.Started(function);
        }

        var requestBody = new BodyPrefix(_options.BodyCaptureBytes);
        var responseBody = new BodyPrefix(_options.BodyCaptureBytes);
        var originalRequestBody = request.Body;
        var originalResponseBody = context.Response.Body;
        request.Body = new TeeReadStream(originalRequestBody, requestBody);
        context.Response.Body = new TeeWriteStream(originalResponseBody, responseBody);
        var upstreamStart = Stopwatch.GetTimestamp();
        var outcome = "ok";
        try
        {
            await next();
            if (context.GetForwarderErrorFeature() is { } failure)
            {
                outcome = $"upstream-error: {failure.Error}";
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
            outcome = $"aborted: {ex.GetType().Name}";
            throw;
        }
        finally
        {
            request.Body = originalRequestBody;
            context.Response.Body = originalResponseBody;
            var upstreamMs = Stopwatch.GetElapsedTime(upstreamStart).TotalMilliseconds;
            var record = Publish(context, function, identity, startTicks, startUtc, upstreamMs, requestBody, responseBody, outcome);
            if (function is not null)
            {
                metrics.Completed(function, record.Status, record.DurationMs / 1000);
            }
        }
    }

    private bool CanMonitor(out string why)
    {
        if (!records.CanAcceptAll)
        {
            why = "record queue full or no record subscriber";
            return false;
        }

        if (_options.Pcap.Enabled && !capture.Running)
        {
            why = "packet capture not running";
            return false;
        }

        why = "";
        return true;
    }

    private async Task RefuseAsync(HttpContext context, int status, string message, string reason)
    {
        metrics.Rejected(reason);
        context.Response.StatusCode = status;
        context.Response.ContentType = "text/plain; charset=utf-8";
        context.Response.Headers["X-OpenFaaS-Internal"] = "proxy";
        await context.Response.WriteAsync(message + "\n", context.RequestAborted);
    }

    private InvocationRecord Publish(HttpContext context, string? function, HopIdentity identity, long startTicks, DateTimeOffset startUtc,
        double upstreamMs, BodyPrefix? requestBody, BodyPrefix? responseBody, string outcome)
    {
        var endTicks = Stopwatch.GetTimestamp();
        var request = context.Request;
        var connection = context.Connection;
        var record = new InvocationRecord(
            identity.CallId,
            identity.Hop.TraceId,
            identity.Hop.SpanId,
            identity.ParentSpanId,
            identity.ClientSpanId,
            function,
            request.Method,
            request.Path.Value ?? "/",
            request.QueryString.HasValue ? SecretRedactor.Text(request.QueryString.Value) : null,
            context.Response.StatusCode,
            requestBody?.TotalBytes ?? 0,
            responseBody?.TotalBytes ?? 0,
            startUtc,
            startUtc + Stopwatch.GetElapsedTime(startTicks, endTicks),
            MonotonicNanoseconds(startTicks),
            MonotonicNanoseconds(endTicks),
            connection.RemoteIpAddress is { } ip ? $"{ip}:{connection.RemotePort}" : null,
            upstreamMs,
            SecretRedactor.Text(requestBody?.Text()),
            requestBody?.Truncated ?? false,
            SecretRedactor.Text(responseBody?.Text()),
            responseBody?.Truncated ?? false,
            RecordedHeaders(request.Headers),
            outcome);
        records.Publish(record);
        return record;
    }

    private static Dictionary<string, string> RecordedHeaders(IHeaderDictionary headers)
    {
        var recorded = new Dictionary<string, string>(Math.Min(headers.Count, MaxRecordedHeaders), StringComparer.OrdinalIgnoreCase);
        foreach (var (name, values) in headers)
        {
            if (recorded.Count == MaxRecordedHeaders)
            {
                break;
            }

            recorded[name] = SecretRedactor.IsSecretHeader(name) ? SecretRedactor.Mask : Truncate(SecretRedactor.Text(values.ToString()), MaxRecordedHeaderValue);
        }

        return recorded;
    }

    /// <summary>The function an OpenFaaS route names: <c>/function/NAME[/...]</c> or <c>/async-function/NAME[/...]</c>.</summary>
    public static string? FunctionName(PathString path)
    {
        var p = path.Value.AsSpan();
        ReadOnlySpan<char> rest;
        if (p.StartsWith("/function/", StringComparison.Ordinal))
        {
            rest = p["/function/".Length..];
        }
        else if (p.StartsWith("/async-function/", StringComparison.Ordinal))
        {
            rest = p["/async-function/".Length..];
        }
        else
        {
            return null;
        }

        var slash = rest.IndexOf('/');
        var name = slash < 0 ? rest : rest[..slash];
        if (name.IsEmpty || name.Length > 253 || name.ContainsAnyExcept(FunctionNameChars))
        {
            return null;
        }

        return name.ToString();
    }

    private static string Truncate(string? s, int max) => s is null ? "" : s.Length <= max ? s : new StringBuilder(s, 0, max, max + 1).Append('…').ToString();

    [LoggerMessage(Level = LogLevel.Information, Message = "Refused {Method} {Path}: {Reason}")]
    private static partial void LogRefused(ILogger logger, string method, string path, string reason);
}
