using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Yarp.ReverseProxy.Forwarder;

namespace FaaSMon.LocalFaaS;

/// <summary>The OpenFaaS gateway routes (OPENFAAS.md §1) and the watchdog's forwarding behaviour (§2).</summary>
internal static class GatewayEndpoints
{
    public const string ServedBy = "faasmon-localfaas/0.1";

    public static void Map(WebApplication app, FunctionRegistry registry, NetworkCredential admin, HttpMessageInvoker upstream)
    {
        var forwarder = app.Services.GetRequiredService<IHttpForwarder>();
        app.MapGet("/healthz", () => Results.Text("OK"));

        RequestDelegate invoke = context => InvokeAsync(context, registry, forwarder, upstream);
        app.Map("/function/{name}", invoke);
        app.Map("/function/{name}/{**rest}", invoke);

        var system = app.MapGroup("/system").AddEndpointFilter(new BasicAuthFilter(admin));
        system.MapGet("/info", () => Results.Json(new
        {
            provider = new { provider = "faasmon-localfaas", orchestration = "namespaces", version = new { sha = "local", release = "0.1.0" } },
            version = new { commit_message = "", sha = "local", release = "0.1.0" },
            arch = RuntimeInformationArch(),
        }));
        system.MapGet("/functions", () => Results.Json(registry.All.Select(f => f.Status()).ToList()));
        system.MapPost("/functions", (HttpContext c, CancellationToken _) => DeployAsync(c, registry));
        system.MapPut("/functions", (HttpContext c, CancellationToken _) => DeployAsync(c, registry));
        system.MapDelete("/functions", async (HttpContext c) =>
        {
            var body = await ReadJsonAsync<DeleteRequest>(c);
            if (body?.FunctionName is not { } name || !FunctionName.IsValid(name))
            {
                return Results.Text("invalid functionName", statusCode: 400);
            }

            return await registry.RemoveAsync(name) ? Results.Accepted() : Results.Text($"function {name} not found", statusCode: 404);
        });
        system.MapGet("/function/{name}", (string name) =>
            !FunctionName.IsValid(name) ? InvalidName(name)
            : registry.Find(name) is { } f ? Results.Json(f.Status())
            : Results.Text($"function {name} not found", statusCode: 404));
        system.MapPost("/scale-function/{name}", async (string name, HttpContext c) =>
        {
            if (!FunctionName.IsValid(name))
            {
                return InvalidName(name);
            }

            var body = await ReadJsonAsync<ScaleRequest>(c);
            if (body is null || body.Replicas < 0 || body.Replicas > FunctionDeployment.MaxReplicas)
            {
                return Results.Text($"replicas must be 0..{FunctionDeployment.MaxReplicas}", statusCode: 400);
            }

            if (registry.Find(name) is not { } deployment)
            {
                return Results.Text($"function {name} not found", statusCode: 404);
            }

            await registry.ScaleAsync(deployment, (int)body.Replicas, c.RequestAborted);
            return Results.Accepted();
        });
    }

    private static async Task InvokeAsync(HttpContext context, FunctionRegistry registry, IHttpForwarder forwarder, HttpMessageInvoker upstream)
    {
        var name = (string)context.GetRouteValue("name")!;
        if (!FunctionName.IsValid(name))
        {
            await InvalidName(name).ExecuteAsync(context);
            return;
        }

        if (registry.Find(name) is not { } deployment)
        {
            context.Response.StatusCode = 404;
            await context.Response.WriteAsync($"error finding function {name}: not found");
            return;
        }

        var started = Stopwatch.GetTimestamp();
        var callId = context.Request.Headers["X-Call-Id"].FirstOrDefault() is { Length: > 0 and <= 128 } given ? given : Guid.NewGuid().ToString();
        var startTime = (DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1_000_000).ToString(CultureInfo.InvariantCulture);
        context.Request.Headers["X-Call-Id"] = callId;
        context.Request.Headers["X-Start-Time"] = startTime;
        context.Response.Headers["X-Call-Id"] = callId;
        context.Response.Headers["X-Start-Time"] = startTime;
        context.Response.Headers["X-Served-By"] = ServedBy;

        var instance = await AcquireAsync(deployment, context.RequestAborted);
        if (instance.Chosen is null)
        {
            context.Response.Headers["X-OpenFaaS-Internal"] = instance.Saturated ? "of-watchdog" : "proxy";
            context.Response.StatusCode = instance.Saturated ? 429 : 503;
            await context.Response.WriteAsync(instance.Saturated
                ? $"Concurrent request limit exceeded. Max concurrent requests: {deployment.MaxInflight}\n"
                : $"No endpoints available for: {name}.");
            return;
        }

        try
        {
            var rest = context.GetRouteValue("rest") as string;
            var config = new ForwarderRequestConfig { ActivityTimeout = EffectiveTimeout(deployment, context.Request) };
            var error = await forwarder.SendAsync(context, $"http://127.0.0.1:{instance.Chosen.Port}", upstream, config,
                new FunctionPathTransformer("/" + (rest ?? ""), started));
            if (error != ForwarderError.None && !context.Response.HasStarted)
            {
                context.Response.Headers["X-OpenFaaS-Internal"] = "proxy";
                context.Response.Headers["X-Duration-Seconds"] = Elapsed(started);
            }
        }
        finally
        {
            instance.Chosen.Release();
            deployment.CountInvocation();
        }
    }

    /// <summary>An instance that is (re)starting is waited for briefly, as a gateway waits for a ready endpoint.</summary>
    private static async Task<(FunctionInstance? Chosen, bool Saturated)> AcquireAsync(FunctionDeployment deployment, CancellationToken ct)
    {
        var deadline = Stopwatch.GetTimestamp() + Stopwatch.Frequency * 5;
        while (true)
        {
            var chosen = deployment.TryAcquire(out var saturated);
            if (chosen is not null || saturated || Stopwatch.GetTimestamp() > deadline
                || !deployment.Instances.Any(i => i.State is InstanceState.Starting or InstanceState.Crashed))
            {
                return (chosen, saturated);
            }

            await Task.Delay(50, ct);
        }
    }

    // An X-Timeout header may shorten exec_timeout for one request, never lengthen it.
    private static TimeSpan? EffectiveTimeout(FunctionDeployment deployment, HttpRequest request)
    {
        var limit = deployment.ExecTimeout;
        if (GoDuration.TryParse(request.Headers["X-Timeout"].FirstOrDefault(), out var asked) && asked > TimeSpan.Zero
            && (limit is null || asked < limit))
        {
            return asked;
        }

        return limit ?? TimeSpan.FromHours(1);
    }

    internal static string Elapsed(long started) =>
        Stopwatch.GetElapsedTime(started).TotalSeconds.ToString("F6", CultureInfo.InvariantCulture);

    private static async Task<IResult> DeployAsync(HttpContext context, FunctionRegistry registry)
    {
        var request = await ReadJsonAsync<FunctionDeploymentRequest>(context);
        if (request is null)
        {
            return Results.Text("invalid deployment request", statusCode: 400);
        }

        var exists = registry.Find(request.Service) is not null;
        if (HttpMethods.IsPut(context.Request.Method) && !exists)
        {
            return Results.Text($"function {FunctionName.Describe(request.Service)} not found", statusCode: 404);
        }

        try
        {
            await registry.DeployAsync(request, context.RequestAborted);
            return Results.Accepted();
        }
        catch (ArgumentException e)
        {
            return Results.Text(e.Message, statusCode: 400);
        }
        catch (FormatException e)
        {
            return Results.Text(e.Message, statusCode: 400);
        }
    }

    private static async Task<T?> ReadJsonAsync<T>(HttpContext context)
        where T : class
    {
        try
        {
            return await JsonSerializer.DeserializeAsync<T>(context.Request.Body, cancellationToken: context.RequestAborted);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static IResult InvalidName(string name) =>
        Results.Text($"invalid function name: {FunctionName.Describe(name)}", statusCode: 400);

    private static string RuntimeInformationArch() =>
        System.Runtime.InteropServices.RuntimeInformation.OSArchitecture.ToString().ToLowerInvariant() switch
        {
            "x64" => "x86_64",
            var other => other,
        };

    /// <summary>The provider strips <c>/function/NAME</c>; the watchdog adds X-Duration-Seconds.</summary>
    private sealed class FunctionPathTransformer(string path, long started) : HttpTransformer
    {
        public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
        {
            await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken);
            proxyRequest.RequestUri = new Uri(destinationPrefix + path + httpContext.Request.QueryString.ToUriComponent());
            var headers = httpContext.Request.Headers;
            if (!headers.ContainsKey("X-Forwarded-Host"))
            {
                proxyRequest.Headers.TryAddWithoutValidation("X-Forwarded-Host", httpContext.Request.Host.Value);
            }

            if (!headers.ContainsKey("X-Forwarded-For"))
            {
                proxyRequest.Headers.TryAddWithoutValidation("X-Forwarded-For",
                    $"{httpContext.Connection.RemoteIpAddress}:{httpContext.Connection.RemotePort}");
            }
        }

        public override async ValueTask<bool> TransformResponseAsync(HttpContext httpContext, HttpResponseMessage? proxyResponse, CancellationToken cancellationToken)
        {
            var result = await base.TransformResponseAsync(httpContext, proxyResponse, cancellationToken);
            httpContext.Response.Headers["X-Duration-Seconds"] = Elapsed(started);
            if (proxyResponse?.Content.Headers.ContentType is null && !httpContext.Response.Headers.ContainsKey("Content-Type"))
            {
                httpContext.Response.ContentType = httpContext.Request.ContentType ?? "text/plain";
            }

            return result;
        }
    }

    /// <summary>OpenFaaS basic auth (faas-provider auth/basic_auth.go): 401, a Basic realm, "invalid credentials".</summary>
    private sealed class BasicAuthFilter(NetworkCredential admin) : IEndpointFilter
    {
        private readonly byte[] _expected = Encoding.UTF8.GetBytes($"{admin.UserName}:{admin.Password}");

        public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
        {
            var header = context.HttpContext.Request.Headers.Authorization.FirstOrDefault();
            if (header is not null && header.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase))
            {
                byte[] given;
                try
                {
                    given = Convert.FromBase64String(header[6..].Trim());
                }
                catch (FormatException)
                {
                    given = [];
                }

                if (CryptographicOperations.FixedTimeEquals(given, _expected))
                {
                    return await next(context);
                }
            }

            context.HttpContext.Response.Headers.WWWAuthenticate = "Basic realm=\"Restricted\"";
            return Results.Text("invalid credentials", statusCode: 401);
        }
    }
}
