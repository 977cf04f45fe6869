using System.Collections.Frozen;
using System.Reflection;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Net.Http.Headers;

namespace FaaSMon.Monitor.Dashboard;

/// <summary>
/// Serves the dashboard (monitor/Dashboard, bundled into dist/ by npm and embedded in this assembly): <c>/</c> is the
/// page, <c>/dashboard/{name}</c> its assets. Only the embedded names are served, so no request reaches the file system.
/// </summary>
internal static class DashboardEndpoints
{
    /// <summary>
    /// No inline script or style and nothing from another origin: the page shows strings from captured traffic, and a
    /// string that slipped into the markup must not run.
    /// </summary>
    public const string ContentSecurityPolicy =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
        "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

    private const string ResourcePrefix = "dashboard/";

    private static readonly FrozenDictionary<string, string> ContentTypes = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase)
    {
        [".html"] = "text/html; charset=utf-8",
        [".js"] = "text/javascript; charset=utf-8",
        [".css"] = "text/css; charset=utf-8",
        [".txt"] = "text/plain; charset=utf-8",
        [".json"] = "application/json; charset=utf-8",
        [".map"] = "application/json; charset=utf-8",
        [".svg"] = "image/svg+xml",
        [".png"] = "image/png",
        [".ico"] = "image/x-icon",
    }.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase);

    private static readonly Lazy<FrozenDictionary<string, DashboardAsset>> Assets = new(LoadAssets);

    /// <summary>The embedded asset names (index.html, app.js, ...), for diagnostics and tests.</summary>
    public static IReadOnlyCollection<string> AssetNames => Assets.Value.Keys;

    /// <summary>Maps <c>/</c> and <c>/dashboard/{**path}</c>; the returned builder applies to both (the host adds auth).</summary>
    public static IEndpointConventionBuilder MapDashboard(this IEndpointRouteBuilder app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var group = app.MapGroup("");
        group.MapMethods("/", [HttpMethods.Get, HttpMethods.Head], (HttpContext context) => Serve(context, "index.html"));
        group.MapMethods("/dashboard/{**path}", [HttpMethods.Get, HttpMethods.Head], (HttpContext context, string? path) => Serve(context, path));
        return group;
    }

    private static IResult Serve(HttpContext context, string? name)
    {
        var headers = context.Response.Headers;
        headers.XContentTypeOptions = "nosniff";
        headers.ContentSecurityPolicy = ContentSecurityPolicy;
        headers["Referrer-Policy"] = "no-referrer";
        headers.XFrameOptions = "DENY";

        // Only names embedded at build time exist; "..", "\" or an encoded slash can never name one, and none is decoded here.
        if (string.IsNullOrEmpty(name) || !Assets.Value.TryGetValue(name, out var asset))
        {
            return Results.NotFound();
        }

        headers.ETag = asset.ETag;
        // The page sits behind authentication and its asset names carry no hash: keep it out of shared caches and
        // revalidate on each load (a 304 when the ETag still matches).
        headers.CacheControl = "private, no-cache";
        var ifNoneMatch = context.Request.GetTypedHeaders().IfNoneMatch;
        if (ifNoneMatch.Any(tag => tag.Equals(EntityTagHeaderValue.Any) || tag.Compare(new EntityTagHeaderValue(asset.ETag), useStrongComparison: false)))
        {
            return Results.StatusCode(StatusCodes.Status304NotModified);
        }

        return Results.Bytes(asset.Content, asset.ContentType);
    }

    private static FrozenDictionary<string, DashboardAsset> LoadAssets()
    {
        var assembly = typeof(DashboardEndpoints).Assembly;
        var assets = new Dictionary<string, DashboardAsset>(StringComparer.Ordinal);
        foreach (var resource in assembly.GetManifestResourceNames())
        {
            if (!resource.StartsWith(ResourcePrefix, StringComparison.Ordinal))
            {
                continue;
            }

            var name = resource[ResourcePrefix.Length..].Replace('\\', '/');
            if (!ContentTypes.TryGetValue(Path.GetExtension(name), out var contentType))
            {
                continue;
            }

            assets[name] = DashboardAsset.Read(assembly, resource, contentType);
        }

        return assets.ToFrozenDictionary(StringComparer.Ordinal);
    }

    private sealed record DashboardAsset(byte[] Content, string ContentType, string ETag)
    {
        public static DashboardAsset Read(Assembly assembly, string resource, string contentType)
        {
            using var stream = assembly.GetManifestResourceStream(resource)
                ?? throw new InvalidOperationException($"embedded dashboard resource {resource} cannot be read");
            using var buffer = new MemoryStream();
            stream.CopyTo(buffer);
            var content = buffer.ToArray();
            var etag = $"\"{Convert.ToHexStringLower(SHA256.HashData(content).AsSpan(0, 12))}\"";
            return new DashboardAsset(content, contentType, etag);
        }
    }
}
