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
    ILogger<PcapRecorder> logger) : BackgroundService
{
    private static readonly TimeSpan SweepInterval = TimeSpan.FromMilliseconds(100);

    /// <summary>How late libpcap may hand over a packet: the ring block timeout (ReadTimeout) plus scheduling.</summary>
    private static readonly TimeSpan DeliverySlack = TimeSpan.FromMilliseconds(300);
    private readonly ProxyOptions _options = options.Value;
    private Channel<RawCapture>? _queue;
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

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Written on a dedicated thread: libpcap's dump calls are blocking file I/O.
        await Task.Factory.StartNew(() => Drain(stoppingToken), stoppingToken, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();
    }

    private async Task Drain(CancellationToken stoppingToken)
    {
        var pcap = _options.Pcap;
        var matcher = new InvocationPacketMatcher(_options.Upstream!.Port, pcap.MaxSliceBytes, 256L * 1024 * 1024);
        using var rotating = new RotatingPcapWriter(CaptureDirectory, _device!.LinkType, pcap.Snaplen, pcap.RotateBytes, pcap.MaxFiles);
        var slices = new SliceWriter(Path.Combine(CaptureDirectory, "slices"), _device.LinkType, pcap.Snaplen);
        var idleTicks = pcap.SliceIdleTimeout.Ticks;
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
                    Flush(matcher.TakeIdle(captureNow, idleTicks), slices);
                    ReadKernelDrops();
                }

                if (reader.TryPeek(out _))
                {
                    continue;
                }

                var wait = reader.WaitToReadAsync(stoppingToken).AsTask();
                if (await Task.WhenAny(wait, Task.Delay(SweepInterval, stoppingToken)) == wait && !await wait)
                {
                    break;
                }
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

    private void Flush(List<InvocationSlice> done, SliceWriter writer)
    {
        foreach (var slice in done)
        {
            string? file = null;
            if (slice.SpanId is not null && slice.Packets.Count > 0)
            {
                try
                {
                    file = writer.Write(slice);
                    metrics.SliceWritten();
                }
                catch (Exception ex) when (ex is IOException or PcapException or UnauthorizedAccessException)
                {
                    LogSliceFailed(logger, slice.SpanId, ex);
                }
            }

            foreach (var flow in slice.ToFlows(file))
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

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not write the pcap slice of span {SpanId}")]
    private static partial void LogSliceFailed(ILogger logger, string spanId, Exception ex);
}

/// <summary>Capture files that roll over by size, keeping the newest few.</summary>
internal sealed class RotatingPcapWriter(string directory, LinkLayers linkType, int snaplen, long rotateBytes, int maxFiles) : IDisposable
{
    private CaptureFileWriterDevice? _writer;
    private long _bytes;
    private int _sequence;

    public string? CurrentFile { get; private set; }

    public void Write(RawCapture raw)
    {
        if (_writer is null || _bytes >= rotateBytes)
        {
            Rotate();
        }

        _writer!.Write(raw);
        _bytes += 16 + raw.Data.Length;
    }


    private void Rotate()
    {
        _writer?.Close();
        CurrentFile = Path.Combine(directory, $"capture-{DateTime.UtcNow:yyyyMMdd-HHmmss}-{_sequence++:D4}.pcap");
        _writer = new CaptureFileWriterDevice(CurrentFile, FileMode.Create);
        _writer.Open(new DeviceConfiguration { LinkLayerType = linkType, Snaplen = snaplen });
        _bytes = 24;
        foreach (var old in Directory.GetFiles(directory, "capture-*.pcap").Order(StringComparer.Ordinal).SkipLast(maxFiles))
        {
            File.Delete(old);
        }
    }

    public void Dispose() => _writer?.Close();
}

/// <summary>One pcap file per invocation: <c>slices/yyyyMMdd-HH/SPANID.pcap</c> (the span id is unique per hop, the call id is not).</summary>
internal sealed class SliceWriter(string directory, LinkLayers linkType, int snaplen)
{
    public string Write(InvocationSlice slice)
    {
        var folder = Path.Combine(directory, DateTime.UtcNow.ToString("yyyyMMdd-HH", System.Globalization.CultureInfo.InvariantCulture));
        Directory.CreateDirectory(folder);
        var path = Path.Combine(folder, $"{slice.SpanId}.pcap");
        var writer = new CaptureFileWriterDevice(path, FileMode.Create);
        try
        {
            writer.Open(new DeviceConfiguration { LinkLayerType = linkType, Snaplen = snaplen });
            foreach (var packet in slice.Packets)
            {
                writer.Write(packet);
            }
        }
        finally
        {
            writer.Close();
        }

        return path;
    }
}
