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
