using System.Collections.Concurrent;
using System.Runtime.InteropServices;

namespace FaaSMon.Network.Native;

/// <summary>
/// A dedicated thread that has entered one network namespace with setns(2). A socket belongs to the namespace of the
/// thread that created it, for its whole life: sockets (and pcap handles) are created here and then used from any thread.
/// Work that must create sockets itself (Npgsql's synchronous Open, pcap_open_live) runs here too. The thread never
/// returns to the pool, so no other code ever runs in the wrong namespace.
/// </summary>
internal sealed class NamespaceThread : IDisposable
{
    private readonly BlockingCollection<Action> _work = new();
    private readonly Thread _thread;

    public NamespaceThread(string netns)
    {
        Namespace = netns;
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _thread = new Thread(() =>
        {
            try
            {
                Enter(netns);
                entered.SetResult();
            }
            catch (Exception e)
            {
                entered.SetException(e);
                return;
            }

            foreach (var item in _work.GetConsumingEnumerable())
            {
                item();
            }
        })
        {
            IsBackground = true,
            Name = $"netns-{netns}",
        };
        _thread.Start();
        entered.Task.GetAwaiter().GetResult();
    }

    public string Namespace { get; }

    public Task<T> RunAsync<T>(Func<T> work)
    {
        var result = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        try
        {
            _work.Add(() =>
            {
                try
                {
                    result.SetResult(work());
                }
                catch (Exception e)
                {
                    result.SetException(e);
                }
            });
        }
        catch (Exception e) when (e is InvalidOperationException or ObjectDisposedException)
        {
            result.SetException(new ObjectDisposedException($"namespace thread {Namespace}", e));
        }

        return result.Task;
    }

    public T Run<T>(Func<T> work) => RunAsync(work).GetAwaiter().GetResult();

    public Task<System.Net.Sockets.Socket> SocketAsync(System.Net.Sockets.SocketType type, System.Net.Sockets.ProtocolType protocol) =>
        RunAsync(() => new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, type, protocol));

    public Task<System.Net.Sockets.Socket> TcpSocketAsync() =>
        SocketAsync(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);

    private static void Enter(string netns)
    {
        using var handle = File.OpenHandle(Path.Combine("/var/run/netns", netns), FileMode.Open, FileAccess.Read);
        if (Linux.SetNs((int)handle.DangerousGetHandle(), Linux.CloneNewNet) != 0)
        {
            throw new IOException($"setns into network namespace {netns} failed: errno {Marshal.GetLastPInvokeError()} (needs root or CAP_SYS_ADMIN)");
        }
    }

    public void Dispose()
    {
        _work.CompleteAdding();
        _thread.Join(TimeSpan.FromSeconds(5));
        _work.Dispose();
    }
}
