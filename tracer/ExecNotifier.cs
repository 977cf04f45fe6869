using System.Buffers.Binary;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;

namespace FaaSMon.Tracer;

/// <summary>
/// Tells the discovery the moment any process calls exec, through the kernel's process events connector (netlink,
/// <c>NETLINK_CONNECTOR</c>, group <c>CN_IDX_PROC</c>), so a new function process is looked at as soon as it execs
/// instead of at the next /proc poll (the new-instance test: found 1–15 ms after the process started). Node reaches
/// <c>listen</c> within about 100 ms of its start here, so a poll that ran late lost that race now and then. Needs CAP_NET_ADMIN in
/// the initial network namespace; where the kernel or a container refuses it, <see cref="TryOpen"/> says why and
/// discovery keeps polling.
/// </summary>
internal sealed partial class ExecNotifier : IAsyncDisposable
{
    private const int NetlinkConnector = 11;    // NETLINK_CONNECTOR
    private const uint CnIdxProc = 1, CnValProc = 1;
    private const uint ProcCnMcastListen = 1;
    private const uint ProcEventExec = 0x00000002;
    private const int NlMsgHdrSize = 16, CnMsgSize = 20;
    private const ushort AfNetlink = 16;
    private const int SockDgram = 2, SockCloexec = 0x80000;

    private readonly Socket _socket;
    private readonly Action<int> _onExec;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _reader;

    private ExecNotifier(Socket socket, Action<int> onExec, ILogger logger)
    {
        _socket = socket;
        _onExec = onExec;
        _reader = Task.Run(() => ReadAsync(logger));
    }

    /// <summary>
    /// Listens for process events and calls <paramref name="onExec"/> with the host pid (tgid) of each process that has
    /// just exec'd, on the reader's thread (keep it short); or returns null with the reason (not permitted, not supported).
    /// </summary>
    public static ExecNotifier? TryOpen(Action<int> onExec, ILogger logger, out string? why)
    {
        // .NET's sockets know no AF_NETLINK: libc makes and binds the socket, .NET reads it
        var fd = socket(AfNetlink, SockDgram | SockCloexec, NetlinkConnector);
        if (fd < 0)
        {
            why = Refused("socket");
            return null;
        }

        Span<byte> address = stackalloc byte[12]; // struct sockaddr_nl: family, pad, nl_pid (0: the kernel picks), nl_groups
        BinaryPrimitives.WriteUInt16LittleEndian(address, AfNetlink);
        BinaryPrimitives.WriteUInt32LittleEndian(address[8..], CnIdxProc);
        Span<byte> listen = stackalloc byte[NlMsgHdrSize + CnMsgSize + 4];
        BinaryPrimitives.WriteUInt32LittleEndian(listen, (uint)listen.Length);  // nlmsg_len
        BinaryPrimitives.WriteUInt16LittleEndian(listen[4..], 3);               // NLMSG_DONE: one message
        BinaryPrimitives.WriteUInt32LittleEndian(listen[12..], (uint)Environment.ProcessId);
        BinaryPrimitives.WriteUInt32LittleEndian(listen[16..], CnIdxProc);      // cn_msg.id
        BinaryPrimitives.WriteUInt32LittleEndian(listen[20..], CnValProc);
        BinaryPrimitives.WriteUInt16LittleEndian(listen[32..], 4);              // cn_msg.len
        BinaryPrimitives.WriteUInt32LittleEndian(listen[36..], ProcCnMcastListen);
        if (bind(fd, address, address.Length) != 0)
        {
            why = Refused("bind");
            close(fd);
            return null;
        }

        if (send(fd, listen, listen.Length, 0) != listen.Length)
        {
            why = Refused("listen request");
            close(fd);
            return null;
        }

        why = null;
        return new ExecNotifier(new Socket(new SafeSocketHandle(fd, ownsHandle: true)), onExec, logger);
    }

    private static string Refused(string step) =>
        $"the kernel's process events connector refused the {step} ({Marshal.GetLastPInvokeErrorMessage()}; it needs CONFIG_PROC_EVENTS and CAP_NET_ADMIN in the initial network namespace)";

    private async Task ReadAsync(ILogger logger)
    {
        var buffer = new byte[8192];
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                int n;
                try
                {
                    n = await _socket.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
                }
                catch (SocketException e) when (e.SocketErrorCode == SocketError.NoBufferSpaceAvailable)
                {
                    // the kernel dropped events it could not queue: polling still finds those processes
                    LogOverrun(logger);
                    continue;
                }

                for (var at = 0; at + NlMsgHdrSize <= n;)
                {
                    var length = (int)BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(at));
                    if (length < NlMsgHdrSize || at + length > n)
                    {
                        break;
                    }

                    // cn_msg, then struct proc_event: what, cpu, timestamp_ns, then exec's process_pid, process_tgid
                    var evt = at + NlMsgHdrSize + CnMsgSize;
                    if (evt + 24 <= at + length && BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(evt)) == ProcEventExec)
                    {
                        _onExec(BinaryPrimitives.ReadInt32LittleEndian(buffer.AsSpan(evt + 20)));
                    }

                    at += (length + 3) & ~3;
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            LogStopped(logger, e.Message);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _socket.Dispose();
        await _reader.ContinueWith(_ => { }, TaskScheduler.Default);
        _stop.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "process events came faster than they were read; polling finds what was lost")]
    private static partial void LogOverrun(ILogger logger);

    [LoggerMessage(Level = LogLevel.Warning, Message = "process events connector stopped ({Reason}); discovery keeps polling")]
    private static partial void LogStopped(ILogger logger, string reason);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int socket(int domain, int type, int protocol);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int bind(int fd, ReadOnlySpan<byte> address, int length);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint send(int fd, ReadOnlySpan<byte> buffer, nint length, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);
}
