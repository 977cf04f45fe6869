using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace FaaSMon.Proxy.Tests;

/// <summary>Misconfiguration stops the proxy at start with a message that says what to fix.</summary>
public sealed class StartupTests
{
    [Fact]
    public async Task AnUpstreamThatIsNotAnHttpUrlIsRefusedAtStart()
    {
        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() =>
            ProxyUnderTest.StartAsync(new Uri("ftp://127.0.0.1/")));
        Assert.Contains("Proxy:Upstream", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AnUnknownCaptureInterfaceIsRefusedAtStart()
    {
        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => ProxyUnderTest.StartAsync(new Uri("http://127.0.0.1:9/"), pcap: true,
            settings: new Dictionary<string, string?> { ["Proxy:Pcap:Interface"] = "no-such-if0" }));
        Assert.Contains("no interface 'no-such-if0'", ex.Message, StringComparison.Ordinal);
    }
}

/// <summary>A proxy that cannot capture says so on /healthz, and in fail-closed mode stops forwarding.</summary>
public sealed class CaptureHealthTests
{
    [Fact]
    public async Task WhenCaptureStopsHealthzIs503AndFailClosedRefuses()
    {
        await using var upstream = await EchoUpstream.StartAsync();
        await using var proxy = await PcapProxy.StartAsync(upstream.Url, settings: new Dictionary<string, string?> { ["Proxy:FailClosed"] = "true" });
        using (var healthy = await proxy.Client.GetAsync("/healthz"))
        {
            Assert.Equal(HttpStatusCode.OK, healthy.StatusCode); // the upstream's own /healthz, passed through
        }

        using (var forwarded = await proxy.Client.GetAsync("/function/echo"))
        {
            Assert.Equal(HttpStatusCode.OK, forwarded.StatusCode);
        }

        proxy.App.Services.GetRequiredService<CaptureStatus>().Stopped("disk gone");
        using var health = await proxy.Client.GetAsync("/healthz");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, health.StatusCode);
        Assert.Contains("packet capture not running", await health.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        using var own = await proxy.Client.GetAsync(ProxyHostingExtensions.HealthPath);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, own.StatusCode);
        using var refused = await proxy.Client.GetAsync("/function/echo");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Contains("monitoring unavailable", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }
}
