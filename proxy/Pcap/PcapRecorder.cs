using System.Diagnostics;
using System.Threading.Channels;
using FaaSMon.Core;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using PacketDotNet;
using SharpPcap;
using SharpPcap.LibPcap;

namespace FaaSMon.Proxy.Pcap;

/// <summary>
/// Captures the gateway-side traffic with libpcap into rotating pcap files, and writes each invocation's packets
/// into its own slice file with <see cref="PacketFlow"/> records. The capture thread only queues packets (bounded,
/// drops counted); parsing, matching and file writing happen here, off the request path.
/// </summary>
internal sealed partial class PcapRecorder(
    IOptions<ProxyOptions> options,
    ProxyMetrics metrics,
    CaptureStatus status,
    RecordStream<PacketFlow> flows,
    RecordStream<InvocationRecord> records,
    ILogger<PcapRecorder> logger) : BackgroundService
{
    private static readonly TimeSpan SweepInterval = TimeSpan.FromMilliseconds(100);

    /// <summary>How late libpcap may hand over a packet: the ring block timeout (ReadTimeout) plus scheduling.</summary>
    private static readonly TimeSpan DeliverySlack = TimeSpan.FromMilliseconds(300);
    private readonly ProxyOptions _options = options.Value;
    private Channel<RawCapture>? _queue;
    private RecordStream<InvocationRecord>.Subscription? _completions;
    private LibPcapLiveDevice? _device;

    public string CaptureDirectory => Path.Combine(_options.DataDirectory, "pcap");

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        var pcap = _options.Pcap;
        var filter = string.IsNullOrWhiteSpace(pcap.Filter) ? $"tcp port {_options.Upstream!.Port}" : pcap.Filter;
        _queue = Channel.CreateBounded<RawCapture>(new BoundedChannelOptions(pcap.QueueCapacity)
        {
            FullMode = BoundedChannelFullMode.Wait, // with TryWrite: refuse and count rather than block the capture thread
            SingleReader = true,
            SingleWriter = true,
        });

        LibPcapLiveDevice device;
        try
        {
            device = LibPcapLiveDeviceList.New().FirstOrDefault(d => d.Name == pcap.Interface)
                ?? throw new InvalidOperationException(
                    $"packet capture: no interface '{pcap.Interface}' (have: {string.Join(", ", LibPcapLiveDeviceList.New().Select(d => d.Name))})");
            device.Open(new DeviceConfiguration
            {
                Mode = DeviceModes.None,
                // Not immediate mode: libpcap then uses TPACKET_V3, which packs packets into blocks by their real size.
                // In immediate mode (TPACKET_V2) every ring frame is snaplen big, so 32 MB held ~500 packets and a
                // 60 ms stall of this process lost a burst of invocations. Packets now reach us within ReadTimeout.
                ReadTimeout = 100,
                Immediate = false,
                Snaplen = pcap.Snaplen,
                BufferSize = 64 * 1024 * 1024,
            });
            device.Filter = filter;
        }
        catch (Exception ex) when (ex is PcapException or DllNotFoundException or TypeInitializationException)
        {
            var message = $"packet capture on '{pcap.Interface}' failed: {ex.Message}. It needs libpcap (Debian libpcap0.8) and root or " +
                "CAP_NET_RAW+CAP_NET_ADMIN; turn it off with Proxy:Pcap:Enabled=false (faasmon proxy --no-pcap).";
            status.Stopped(message);
            throw new InvalidOperationException(message, ex);
        }

        Directory.CreateDirectory(CaptureDirectory);
        // Finished invocations tell the matcher when a slice may close: a slow upstream answer must not be cut off.
        _completions = records.Subscribe("pcap-slices", Math.Max(pcap.QueueCapacity / 4, 1024));
        _device = device;
        device.OnPacketArrival += OnPacketArrival;
        device.StartCapture();
        status.Started();
        LogCapturing(logger, pcap.Interface, filter, CaptureDirectory);
        await base.StartAsync(cancellationToken);
    }

    private void OnPacketArrival(object sender, PacketCapture e)
    {
        if (_queue!.Writer.TryWrite(e.GetPacket()))
        {
            metrics.PacketCaptured();
        }
        else
        {
            metrics.PacketQueueDropped();
        }
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        // A thread of its own, waiting synchronously: the capture and slice files are blocking I/O, and on a
        // thread-pool thread they starved the pool that serves requests (seconds-long tail latencies on 2 cores).
        DedicatedThread.Run("faasmon-pcap", () =>
        {
            try
            {
                Drain(stoppingToken);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Fail-open: a full or broken disk must not take the proxy down. Capture counts as stopped (so
                // /healthz and fail-closed mode see it) and what is still captured is dropped and counted.
                LogCaptureFailed(logger, CaptureDirectory, ex);
                status.Stopped($"writing captures failed: {ex.Message}");
                DiscardUntilStopped(stoppingToken);
            }
        });

    private void DiscardUntilStopped(CancellationToken stoppingToken)
    {
        var reader = _queue!.Reader;
        while (!reader.Completion.IsCompleted && !stoppingToken.IsCancellationRequested)
        {
            while (reader.TryRead(out _))
            {
                metrics.PacketQueueDropped();
            }

            Thread.Sleep(100);
        }
    }

    private void Drain(CancellationToken stoppingToken)
    {
        var pcap = _options.Pcap;
        var matcher = new InvocationPacketMatcher(_options.Upstream!.Port, pcap.MaxSliceBytes, 256L * 1024 * 1024);
        using var rotating = new RotatingPcapWriter(CaptureDirectory, _device!.LinkType, pcap.Snaplen, pcap.RotateBytes, pcap.MaxFiles);
        using var slices = new SliceBundleWriter(Path.Combine(CaptureDirectory, "slices"), _device.LinkType, pcap.Snaplen, pcap.RotateBytes, pcap.MaxFiles);
        var idleTicks = pcap.SliceIdleTimeout.Ticks;
        var maxOpenTicks = (_options.UpstreamTimeout + pcap.SliceIdleTimeout).Ticks;
        var completions = _completions!.Reader;
        var reader = _queue!.Reader;
        var lastSweep = Stopwatch.GetTimestamp();
        try
        {
            while (true)
            {
                while (reader.TryRead(out var raw))
                {
                    rotating.Write(raw);
                    if (pcap.Slices)
                    {
                        matcher.Add(raw);
                    }

                    if (Stopwatch.GetElapsedTime(lastSweep) >= SweepInterval)
                    {
                        break;
                    }
                }

                if (Stopwatch.GetElapsedTime(lastSweep) >= SweepInterval)
                {
                    lastSweep = Stopwatch.GetTimestamp();
                    // With nothing queued, capture time has moved on even without packets (less the kernel's delivery delay).
                    var captureNow = reader.Count == 0
                        ? Math.Max(matcher.LatestCaptureTicks, DateTime.UtcNow.Ticks - DeliverySlack.Ticks)
                        : matcher.LatestCaptureTicks;
                    while (completions.TryRead(out var finished))
                    {
                        matcher.Complete(finished.SpanId, finished.EndUtc.UtcTicks);
                    }

                    Flush(matcher.TakeIdle(captureNow, idleTicks, maxOpenTicks), slices);
                    rotating.Flush();
                    ReadKernelDrops();
                }

                if (reader.TryPeek(out _))
                {
                    continue;
                }

                // StopAsync completes the queue; the token is the backstop. A short sleep rather than a blocking wait,
                // which spins first and cost the requests CPU (libpcap hands packets over in blocks anyway).
                if (reader.Completion.IsCompleted || stoppingToken.IsCancellationRequested)
                {
                    break;
                }

                Thread.Sleep(10);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        finally
        {
            // Stopping: what was captured is written, every open slice included.
            while (reader.TryRead(out var raw))
            {
                rotating.Write(raw);
                if (pcap.Slices)
                {
                    matcher.Add(raw);
                }
            }

            Flush(matcher.TakeIdle(long.MaxValue, null), slices);
        }
    }

    private void Flush(List<InvocationSlice> done, SliceBundleWriter writer)
    {
        if (done.Count == 0)
        {
            return;
        }

        var locations = new SliceLocation?[done.Count];
        try
        {
            for (var i = 0; i < done.Count; i++)
            {
                if (done[i].SpanId is not null && done[i].Packets.Count > 0)
                {
                    locations[i] = writer.Write(done[i]);
                    metrics.SliceWritten();
                }
            }

            // Readable before anyone hears of it.
            writer.Flush();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            LogSliceFailed(logger, writer.CurrentFile ?? CaptureDirectory, ex);
            Array.Clear(locations);
        }

        for (var i = 0; i < done.Count; i++)
        {
            foreach (var flow in done[i].ToFlows(locations[i]))
            {
                flows.Publish(flow);
            }
        }
    }

    private void ReadKernelDrops()
    {
        try
        {
            var stats = _device!.Statistics;
            metrics.KernelDropped(stats.DroppedPackets + (long)stats.InterfaceDroppedPackets);
        }
        catch (PcapException)
        {
            // statistics are best effort; the device may be closing
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_device is { } device)
        {
            try
            {
                device.StopCapture();
            }
            catch (PcapException)
            {
                // already stopped
            }

            ReadKernelDrops();
        }

        _queue?.Writer.TryComplete();
        _completions?.Dispose();
        status.Stopped(null);
        await base.StopAsync(cancellationToken);
        _device?.Close();
        _device = null;
    }

    public override void Dispose()
    {
        _device?.Close();
        base.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Capturing on {Interface} with filter '{Filter}' into {Directory}")]
    private static partial void LogCapturing(ILogger logger, string @interface, string filter, string directory);

    [LoggerMessage(Level = LogLevel.Error, Message = "Writing captures under {Directory} failed; capture stops, requests keep flowing")]
    private static partial void LogCaptureFailed(ILogger logger, string directory, Exception ex);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not write pcap slices to {Path}; their flows are published without a slice")]
    private static partial void LogSliceFailed(ILogger logger, string path, Exception ex);
}

/// <summary>Capture files that roll over by size, keeping the newest few.</summary>
internal sealed class RotatingPcapWriter(string directory, LinkLayers linkType, int snaplen, long rotateBytes, int maxFiles) : IDisposable
{
    private PcapFileWriter? _writer;
    private int _sequence;

    public string? CurrentFile { get; private set; }

    public void Write(RawCapture raw)
    {
        if (_writer is null || _writer.Length >= rotateBytes)
        {
            Rotate();
        }

        _writer!.Write(raw);
    }

    /// <summary>Makes what was captured readable by others (called when the capture goes quiet and at each sweep).</summary>
    public void Flush() => _writer?.Flush();

    private void Rotate()
    {
        _writer?.Dispose();
        CurrentFile = Path.Combine(directory, $"capture-{DateTime.UtcNow:yyyyMMdd-HHmmss}-{_sequence++:D4}.pcap");
        _writer = new PcapFileWriter(CurrentFile, (int)linkType, snaplen, 1024 * 1024);
        foreach (var old in Directory.GetFiles(directory, "capture-*.pcap").Order(StringComparer.Ordinal).SkipLast(maxFiles))
        {
            File.Delete(old);
        }
    }

    public void Dispose() => _writer?.Dispose();
}

/// <summary>Where one invocation's slice is: a byte range of packet records in a bundle file.</summary>
internal sealed record SliceLocation(string File, long Offset, long Length);

/// <summary>
/// Per-invocation slices, each invocation's packets written contiguously into size-rotated bundle files
/// (<c>slices/slices-yyyyMMdd-HHmmss-NNNN.pcap</c>). One file per invocation was the first design; this disk creates
/// only a few thousand files a second, fewer than the invocations a busy gateway serves.
/// </summary>
internal sealed class SliceBundleWriter(string directory, LinkLayers linkType, int snaplen, long rotateBytes, int maxFiles) : IDisposable
{
    private PcapFileWriter? _writer;
    private int _sequence;

    public string? CurrentFile { get; private set; }

    public SliceLocation Write(InvocationSlice slice)
    {
        if (_writer is null || _writer.Length >= rotateBytes)
        {
            Rotate();
        }

        var start = _writer!.Length;
        foreach (var packet in slice.Packets)
        {
            _writer.Write(packet);
        }

        return new SliceLocation(CurrentFile!, start - 24, _writer.Length - start);
    }

    public void Flush() => _writer?.Flush();

    private void Rotate()
    {
        _writer?.Dispose();
        Directory.CreateDirectory(directory);
        CurrentFile = Path.Combine(directory, $"slices-{DateTime.UtcNow:yyyyMMdd-HHmmss}-{_sequence++:D4}.pcap");
        _writer = new PcapFileWriter(CurrentFile, (int)linkType, snaplen, 1024 * 1024);
        foreach (var old in Directory.GetFiles(directory, "slices-*.pcap").Order(StringComparer.Ordinal).SkipLast(maxFiles))
        {
            File.Delete(old);
        }
    }

    public void Dispose() => _writer?.Dispose();
}

/// <summary>Reads an invocation's slice back as a standalone pcap file.</summary>
public static class PcapSlices
{
    public static byte[] Read(FaaSMon.Core.PacketFlow flow)
    {
        ArgumentNullException.ThrowIfNull(flow.SliceFile, nameof(flow));
        using var file = new FileStream(flow.SliceFile, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        var bytes = new byte[24 + flow.SliceLength];
        file.ReadExactly(bytes, 0, 24);
        file.Position = 24 + flow.SliceOffset;
        file.ReadExactly(bytes, 24, (int)flow.SliceLength);
        return bytes;
    }
}
