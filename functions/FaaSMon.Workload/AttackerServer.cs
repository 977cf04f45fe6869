using System.Text;
using Microsoft.AspNetCore.Http;

namespace FaaSMon.Workload;

internal enum CallbackKind
{
    /// <summary>A function downloaded the implant (<c>GET /stage/NONCE/evil.sh</c>).</summary>
    StageDownload,

    /// <summary>Stolen data arrived (<c>POST /exfil?nonce=N</c>).</summary>
    Exfil,

    /// <summary>An implant phoned home (<c>GET /beacon?nonce=N&amp;host=H</c>).</summary>
    Beacon,
}

/// <summary>One request a compromised function made to the attacker.</summary>
internal sealed record AttackerCallback(CallbackKind Kind, string Nonce, DateTimeOffset Time, string Remote, string? Host, string Body);

/// <summary>
/// The attacker's web server: serves the implant, receives exfiltrated data and beacons, and records each with its nonce
/// so an attack is only called successful when its own evidence arrived.
/// </summary>
internal sealed class AttackerServer : IAsyncDisposable
{
    /// <summary>More than any environment plus secret mount; a bound so a runaway client cannot fill memory.</summary>
    private const int MaxBodyBytes = 1 << 20;

    private static readonly byte[] DecoyImage = SampleImages.Png(8, 8, 7);

    private readonly List<AttackerCallback> callbacks = [];
    private readonly Lock callbacksLock = new();
    private TaskCompletionSource arrived = NewSignal();
    private LoopbackHttpServer? server;

    private AttackerServer()
    {
    }

    public Uri BaseUri => Server.BaseUri;

    public IReadOnlyList<AttackerCallback> Callbacks
    {
        get
        {
            lock (callbacksLock)
            {
                return [.. callbacks];
            }
        }
    }

    private LoopbackHttpServer Server => server ?? throw new InvalidOperationException("the attacker server is not started");

    public static async Task<AttackerServer> StartAsync(CancellationToken ct)
    {
        var attacker = new AttackerServer();
        attacker.server = await LoopbackHttpServer.StartAsync(attacker.HandleAsync, ct);
        return attacker;
    }

    /// <summary>The first callback of <paramref name="kind"/> for <paramref name="nonce"/>, or null when none came in time.</summary>
    public async Task<AttackerCallback?> WaitForAsync(CallbackKind kind, string nonce, TimeSpan timeout, CancellationToken ct)
    {
        using var timeoutCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeoutCts.CancelAfter(timeout);
        while (true)
        {
            Task signal;
            lock (callbacksLock)
            {
                var found = callbacks.Find(c => c.Kind == kind && c.Nonce == nonce);
                if (found is not null)
                {
                    return found;
                }

                signal = arrived.Task;
            }

            try
            {
                await signal.WaitAsync(timeoutCts.Token);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                return null;
            }
        }
    }

    /// <summary>Whether a callback of <paramref name="kind"/> for <paramref name="nonce"/> has arrived already.</summary>
    public bool HasReceived(CallbackKind kind, string nonce)
    {
        lock (callbacksLock)
        {
            return callbacks.Exists(c => c.Kind == kind && c.Nonce == nonce);
        }
    }

    private async Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        var path = request.Path.Value ?? "";
        var remote = $"{context.Connection.RemoteIpAddress}:{context.Connection.RemotePort}";
        var nonce = request.Query["nonce"].ToString();

        if (path == "/exfil" && HttpMethods.IsPost(request.Method) && nonce.Length > 0)
        {
            var body = await ReadBoundedAsync(request.Body, context.RequestAborted);
            Record(new AttackerCallback(CallbackKind.Exfil, nonce, DateTimeOffset.UtcNow, remote, null, body));
            context.Response.StatusCode = StatusCodes.Status204NoContent;
            return;
        }

        if (path == "/beacon" && nonce.Length > 0)
        {
            var body = await ReadBoundedAsync(request.Body, context.RequestAborted);
            Record(new AttackerCallback(CallbackKind.Beacon, nonce, DateTimeOffset.UtcNow, remote, request.Query["host"].ToString(), body));
            context.Response.StatusCode = StatusCodes.Status204NoContent;
            return;
        }

        // /stage/NONCE/evil.sh serves the implant; any other name under /stage/NONCE/ (the trigger's injected file name)
        // serves a harmless picture, so the function's download succeeds and it goes on to hash the file.
        var segments = path.Split('/', 4, StringSplitOptions.RemoveEmptyEntries);
        if (segments is ["stage", var stageNonce, var fileName] && HttpMethods.IsGet(request.Method))
        {
            if (fileName == AttackPayloads.StagedFileName)
            {
                Record(new AttackerCallback(CallbackKind.StageDownload, stageNonce, DateTimeOffset.UtcNow, remote, null, ""));
                context.Response.ContentType = "text/x-shellscript";
                await context.Response.WriteAsync(AttackPayloads.EvilScript, context.RequestAborted);
            }
            else
            {
                context.Response.ContentType = "image/png";
                await context.Response.Body.WriteAsync(DecoyImage, context.RequestAborted);
            }

            return;
        }

        context.Response.StatusCode = StatusCodes.Status404NotFound;
    }

    private static async Task<string> ReadBoundedAsync(Stream body, CancellationToken ct)
    {
        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await body.ReadAsync(chunk, ct)) > 0 && buffer.Length < MaxBodyBytes)
        {
            buffer.Write(chunk, 0, (int)Math.Min(read, MaxBodyBytes - buffer.Length));
        }

        return Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }

    private void Record(AttackerCallback callback)
    {
        TaskCompletionSource signal;
        lock (callbacksLock)
        {
            callbacks.Add(callback);
            signal = arrived;
            arrived = NewSignal();
        }

        signal.TrySetResult();
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    public ValueTask DisposeAsync() => server?.DisposeAsync() ?? ValueTask.CompletedTask;
}
