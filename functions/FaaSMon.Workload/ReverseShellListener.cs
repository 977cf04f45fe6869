using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using System.Threading.Channels;

namespace FaaSMon.Workload;

/// <summary>What came back over one reverse shell.</summary>
/// <param name="Uid">The uid the shell runs as, when the probe answered.</param>
/// <param name="Transcript">Everything the shell sent (prompts included), bounded.</param>
internal sealed record ShellSession(bool Answered, string Remote, int? Uid, string Transcript);

/// <summary>
/// The attacker's raw TCP listener on 127.0.0.1. Connections are queued as they arrive; an attack takes the next one, types
/// a probe carrying its nonce and reads until the answer line comes back.
/// </summary>
internal sealed class ReverseShellListener : IAsyncDisposable
{
    private const int MaxTranscriptChars = 16 * 1024;

    private readonly TcpListener listener;
    private readonly Channel<TcpClient> connections = Channel.CreateUnbounded<TcpClient>();
    private readonly CancellationTokenSource stopping = new();
    private readonly Task acceptLoop;

    private ReverseShellListener(TcpListener listener)
    {
        this.listener = listener;
        acceptLoop = AcceptLoopAsync();
    }

    public string Host => ((IPEndPoint)listener.LocalEndpoint).Address.ToString();

    public int Port => ((IPEndPoint)listener.LocalEndpoint).Port;

    public static ReverseShellListener Start()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return new ReverseShellListener(listener);
    }

    /// <summary>
    /// Takes the next shell that connects (waiting up to <paramref name="timeout"/> in all), sends the probe for
    /// <paramref name="nonce"/>, and reads until <c>FAASMON-NONCE-UID</c> arrives or the shell closes.
    /// </summary>
    public async Task<ShellSession?> RunProbeAsync(string nonce, TimeSpan timeout, CancellationToken ct)
    {
        using var timeoutCts = CancellationTokenSource.CreateLinkedTokenSource(ct, stopping.Token);
        timeoutCts.CancelAfter(timeout);
        TcpClient client;
        try
        {
            client = await connections.Reader.ReadAsync(timeoutCts.Token);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return null;
        }
        catch (ChannelClosedException)
        {
            return null; // the listener was disposed while waiting
        }

        using (client)
        {
            var remote = client.Client.RemoteEndPoint?.ToString() ?? "?";
            var answer = new Regex($@"{Regex.Escape(AttackPayloads.ReverseShellMarker(nonce))}(\d+)", RegexOptions.None, TimeSpan.FromSeconds(1));
            var transcript = new StringBuilder();
            try
            {
                var stream = client.GetStream();
                await stream.WriteAsync(Encoding.UTF8.GetBytes(AttackPayloads.ReverseShellProbe(nonce)), timeoutCts.Token);
                var buffer = new byte[4096];
                int read;
                while ((read = await stream.ReadAsync(buffer, timeoutCts.Token)) > 0)
                {
                    transcript.Append(Encoding.UTF8.GetString(buffer, 0, read));
                    if (answer.Match(transcript.ToString()) is { Success: true } match)
                    {
                        return new ShellSession(true, remote, int.Parse(match.Groups[1].ValueSpan, provider: null), Bound(transcript));
                    }

                    if (transcript.Length > MaxTranscriptChars)
                    {
                        break;
                    }
                }
            }
            catch (Exception ex) when (ex is IOException or SocketException || (ex is OperationCanceledException && !ct.IsCancellationRequested))
            {
                transcript.Append($"\n[{ex.GetType().Name}: {ex.Message}]");
            }

            return new ShellSession(false, remote, null, Bound(transcript));
        }
    }

    private static string Bound(StringBuilder transcript) =>
        transcript.Length <= MaxTranscriptChars ? transcript.ToString() : transcript.ToString(0, MaxTranscriptChars);

    private async Task AcceptLoopAsync()
    {
        try
        {
            while (!stopping.IsCancellationRequested)
            {
                var client = await listener.AcceptTcpClientAsync(stopping.Token);
                client.NoDelay = true;
                await connections.Writer.WriteAsync(client, stopping.Token);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException)
        {
            // The listener is stopping.
        }
        finally
        {
            connections.Writer.TryComplete();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await stopping.CancelAsync();
        listener.Stop();
        await acceptLoop;
        while (connections.Reader.TryRead(out var left))
        {
            left.Dispose();
        }

        stopping.Dispose();
    }
}
