using System.Collections.Concurrent;
using Microsoft.AspNetCore.Http;

namespace FaaSMon.Workload;

/// <summary>
/// Where benign photographers keep their pictures: <c>GET /photos/NAME.png|.jpg</c> answers a real image drawn from the
/// name, so <c>product-photos-receive</c> downloads genuine bytes of varied size.
/// </summary>
internal sealed class PhotoHost : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, byte[]> images = new(StringComparer.Ordinal);
    private LoopbackHttpServer? server;
    private int served;

    private PhotoHost()
    {
    }

    public Uri BaseUri => Server.BaseUri;

    private LoopbackHttpServer Server => server ?? throw new InvalidOperationException("the photo host is not started");

    public int Served => Volatile.Read(ref served);

    public static async Task<PhotoHost> StartAsync(CancellationToken ct)
    {
        var host = new PhotoHost();
        host.server = await LoopbackHttpServer.StartAsync(host.HandleAsync, ct);
        return host;
    }

    public Uri PhotoUrl(string fileName) => new(BaseUri, $"photos/{Uri.EscapeDataString(fileName)}");

    /// <summary>The bytes served for <paramref name="fileName"/>, or null for a name that is not an image.</summary>
    public static byte[]? Render(string fileName)
    {
        var seed = SampleImages.SeedFrom(fileName);
        var random = new Random(seed);
        var width = random.Next(24, 160);
        var height = random.Next(24, 120);
        return Path.GetExtension(fileName).ToLowerInvariant() switch
        {
            ".png" => SampleImages.Png(width, height, seed),
            ".jpg" or ".jpeg" => SampleImages.Jpeg(width, height, seed),
            _ => null,
        };
    }

    private async Task HandleAsync(HttpContext context)
    {
        var path = context.Request.Path.Value ?? "";
        const string prefix = "/photos/";
        var name = path.StartsWith(prefix, StringComparison.Ordinal) ? path[prefix.Length..] : "";
        var bytes = name.Length == 0 || name.Contains('/', StringComparison.Ordinal)
            ? null
            : images.GetOrAdd(name, static n => Render(n) ?? []);
        if (bytes is not { Length: > 0 } || !HttpMethods.IsGet(context.Request.Method) && !HttpMethods.IsHead(context.Request.Method))
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return;
        }

        Interlocked.Increment(ref served);
        context.Response.ContentType = name.EndsWith(".png", StringComparison.OrdinalIgnoreCase) ? "image/png" : "image/jpeg";
        context.Response.ContentLength = bytes.Length;
        if (HttpMethods.IsGet(context.Request.Method))
        {
            await context.Response.Body.WriteAsync(bytes, context.RequestAborted);
        }
    }

    public ValueTask DisposeAsync() => server?.DisposeAsync() ?? ValueTask.CompletedTask;
}
