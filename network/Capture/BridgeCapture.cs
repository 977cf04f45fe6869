using FaaSMon.Network.Native;
using SharpPcap;
using SharpPcap.LibPcap;

namespace FaaSMon.Network.Capture;

/// <summary>A frame as the live capture saw it: parsed at once on the capture thread (header reads only, cheap).</summary>
internal readonly record struct CapturedFrame(long TimestampTicks, FrameProblem Problem, FramePacket Packet);

/// <summary>
/// Live capture on the testbed bridge with SharpPcap. The bridge lives in a namespace of its own, so the pcap handle is
/// opened from a thread that entered it with setns(2): the packet socket belongs to that namespace for its whole life,
/// and SharpPcap's capture thread can then read it from anywhere. (A `tcpdump -w` child would do too, but means a file
/// per window, parsing it back, and one more process to kill; this way frames arrive in memory as they happen.)
/// The bridge is put in promiscuous mode, which makes Linux pass up a copy of every frame it forwards between ports.
/// </summary>
internal sealed class BridgeCapture : IDisposable
{
    private readonly LibPcapLiveDevice _device;
    private readonly List<CapturedFrame> _frames = [];
    private long _received;

    private BridgeCapture(LibPcapLiveDevice device) => _device = device;

    public long Received => Interlocked.Read(ref _received);

    /// <exception cref="TestbedCaptureException">libpcap missing, no rights, or no such interface in that namespace.</exception>
    public static BridgeCapture Start(NamespaceThread bridgeNamespace, string interfaceName) =>
        Start(bridgeNamespace.Run(() => Open(interfaceName, $"namespace {bridgeNamespace.Namespace}", DeviceModes.Promiscuous, filter: null)));

    /// <summary>
    /// Live capture on an interface of this process's own network namespace (the monitor's network view: the function
    /// containers' traffic), not promiscuous, optionally with a kernel BPF filter.
    /// </summary>
    /// <exception cref="TestbedCaptureException">libpcap missing, no rights, no such interface, or a filter libpcap rejects.</exception>
    public static BridgeCapture StartHere(string interfaceName, string? filter) =>
        Start(Open(interfaceName, "this namespace", DeviceModes.None, filter));

    private static BridgeCapture Start(LibPcapLiveDevice device)
    {
        var capture = new BridgeCapture(device);
        device.OnPacketArrival += capture.OnPacketArrival;
        device.StartCapture();
        return capture;
    }

    private static LibPcapLiveDevice Open(string interfaceName, string where, DeviceModes mode, string? filter)
    {
        try
        {
            // New(), not Instance: the cached list was enumerated in whatever namespace first asked.
            var found = LibPcapLiveDeviceList.New().FirstOrDefault(d => d.Name == interfaceName)
                ?? throw new TestbedCaptureException($"no interface {interfaceName} in {where}");
            found.Open(new DeviceConfiguration
            {
                Mode = mode,
                ReadTimeout = 50,
                Immediate = true,
                Snaplen = 256,
                BufferSize = 16 * 1024 * 1024,
            });
            if (!string.IsNullOrWhiteSpace(filter))
            {
                try
                {
                    found.Filter = filter;
                }
                catch (PcapException e)
                {
                    found.Close();
                    throw new TestbedCaptureException($"capture filter \"{filter}\" rejected by libpcap: {e.Message}", e);
                }
            }

            return found;
        }
        catch (Exception e) when (e is PcapException or DllNotFoundException or TypeInitializationException)
        {
            throw new TestbedCaptureException($"capture on {interfaceName} in {where} failed: {e.Message} " +
                "(needs Debian libpcap0.8 and root or CAP_NET_RAW+CAP_NET_ADMIN)", e);
        }
    }

    private void OnPacketArrival(object sender, PacketCapture e)
    {
        var raw = e.GetPacket();
        var ticks = raw.Timeval.Date.ToUniversalTime().Ticks;
        var problem = FrameParser.TryParse(raw.Data, WireLength(e, raw), ticks, out var packet);
        Interlocked.Increment(ref _received);
        lock (_frames)
        {
            _frames.Add(new CapturedFrame(ticks, problem, packet));
        }
    }

    /// <summary>The length on the wire: RawCapture reports the captured (snap) length, the libpcap header has the real one.</summary>
    internal static int WireLength(PacketCapture capture, RawCapture raw) =>
        capture.Header is PcapHeader header ? (int)Math.Max(header.PacketLength, (uint)raw.Data.Length) : raw.Data.Length;

    /// <summary>Everything captured since the last call, in arrival order.</summary>
    public List<CapturedFrame> Drain()
    {
        lock (_frames)
        {
            var taken = new List<CapturedFrame>(_frames);
            _frames.Clear();
            return taken;
        }
    }

    public void Dispose()
    {
        try
        {
            _device.StopCapture();
        }
        catch (PcapException)
        {
            // already stopped
        }

        _device.OnPacketArrival -= OnPacketArrival;
        _device.Close();
    }
}

internal sealed class TestbedCaptureException(string message, Exception? inner = null) : Exception(message, inner);
