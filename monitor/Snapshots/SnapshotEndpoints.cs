using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace FaaSMon.Monitor.Snapshots;

/// <summary>An instance snapshot as the API lists it (api.md: <c>GET /api/invocations/{ref}/snapshots</c>).</summary>
public sealed record SnapshotListing(string Instance, string Function, DateTimeOffset CreatedAt, IReadOnlyList<SnapshotListingFile> Files, string? Error, string Status);

public sealed record SnapshotListingFile(string Name, long Bytes, string Url);

/// <summary>
/// The snapshot endpoints, for the host to mount under <c>/api</c> behind its auth:
/// <c>GET /invocations/{id}/snapshots</c> lists the snapshots of the verdict of an invocation (or call) id;
/// <c>GET /snapshots/{verdictId}/{instance}/{file}</c> downloads one file that the instance's manifest lists.
/// </summary>
public static class SnapshotEndpoints
{
    /// <param name="verdictOf">Turns an invocation id (or call id) into the id of its verdict, null when unknown or not snapshotted.</param>
    public static RouteGroupBuilder MapSnapshots(this RouteGroupBuilder api, SnapshotService snapshots, Func<string, string?> verdictOf)
    {
        ArgumentNullException.ThrowIfNull(api);
        ArgumentNullException.ThrowIfNull(snapshots);
        ArgumentNullException.ThrowIfNull(verdictOf);
        api.MapGet("/invocations/{id}/snapshots", (string id, HttpRequest request) =>
        {
            if (verdictOf(id) is not { } verdictId)
            {
                return Results.NotFound(new { error = $"no invocation or verdict {id}" });
            }

            // the group's prefix (e.g. /api) from this request's own path, so the links work wherever it is mounted
            var path = (request.PathBase + request.Path).Value ?? "";
            var suffix = $"/invocations/{Uri.EscapeDataString(id)}/snapshots";
            var prefix = path.EndsWith(suffix, StringComparison.Ordinal) ? path[..^suffix.Length] : "";
            var listing = snapshots.List(verdictId).Select(s => new SnapshotListing(
                s.Instance, s.Function, s.CreatedAt,
                [.. s.Files.Select(f => new SnapshotListingFile(f.Name, f.Bytes, $"{prefix}/snapshots/{verdictId}/{s.Instance}/{f.Name}"))],
                s.Error, s.Status));
            return Results.Json(listing.ToList(), SnapshotJson.Api);
        });
        api.MapGet("/snapshots/{verdictId}/{instance}/{file}", (string verdictId, string instance, string file) =>
            snapshots.FilePath(verdictId, instance, file) is { } path
                ? Results.File(path, "application/octet-stream", $"{instance}-{file}", enableRangeProcessing: true)
                : Results.NotFound(new { error = "no such snapshot file" }));
        return api;
    }
}
