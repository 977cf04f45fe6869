using System.Net;
using System.Text.Json;
using FaaSMon.Core;
using FaaSMon.Monitor.Alerts;
using Microsoft.Extensions.Logging.Abstractions;

namespace FaaSMon.Monitor.Tests;

public sealed class FalcoAlertTests
{
    private static readonly Verdict Shell = new("inv-1", "call-1", "0123456789abcdef0123456789abcdef", "product-photos-message", 0.97, "gin-supervised", true,
        [new RuleHit("shell-under-function", "a shell (sh) was started by the function process", [3, 4])], [], []);

    [Fact]
    public void An_intrusion_becomes_falco_json_named_by_its_first_rule_with_the_invocation_in_its_fields()
    {
        var time = new DateTimeOffset(2026, 12, 1, 22, 0, 1, 234, TimeSpan.Zero);
        var json = JsonDocument.Parse(JsonSerializer.Serialize(FalcoAlert.For(Shell, "a1b2c3d4e5f60718", "product-photos-message-1", time))).RootElement;
        Assert.Equal("shell-under-function", json.GetProperty("rule").GetString());
        Assert.Equal("Critical", json.GetProperty("priority").GetString());
        Assert.Equal(time, json.GetProperty("time").GetDateTimeOffset());
        Assert.StartsWith("22:00:01.2340000: Critical", json.GetProperty("output").GetString(), StringComparison.Ordinal);
        Assert.Contains("a shell (sh) was started", json.GetProperty("output").GetString(), StringComparison.Ordinal);
        var fields = json.GetProperty("output_fields");
        Assert.Equal("a1b2c3d4e5f60718", fields.GetProperty("faasmon.invocation").GetString());
        Assert.Equal("product-photos-message-1", fields.GetProperty("faasmon.instance").GetString());
        Assert.Equal("0.9700", fields.GetProperty("faasmon.score").GetString());
        Assert.Contains("shell-under-function", json.GetProperty("tags").EnumerateArray().Select(t => t.GetString()));

        var modelOnly = Shell with { RuleHits = [] };
        Assert.Equal("gnn:gin-supervised", JsonDocument.Parse(JsonSerializer.Serialize(FalcoAlert.For(modelOnly, "x", null, time))).RootElement.GetProperty("rule").GetString());
    }

    [Fact]
    public async Task A_receiver_that_fails_once_gets_the_alert_on_the_retry_and_a_dead_one_costs_a_drop_not_a_hang()
    {
        var handler = new Flaky([HttpStatusCode.InternalServerError, HttpStatusCode.OK]);
        await using (var hook = new FalcoWebhook(new Uri("http://127.0.0.1:9/alerts"), NullLogger.Instance, handler))
        {
            hook.Post(FalcoAlert.For(Shell, "a", null, DateTimeOffset.UtcNow));
            for (var i = 0; i < 100 && hook.Sent == 0; i++)
            {
                await Task.Delay(50);
            }

            Assert.Equal(1, hook.Sent);
        }

        Assert.Equal(2, handler.Requests);
        var dead = new Flaky([HttpStatusCode.ServiceUnavailable, HttpStatusCode.ServiceUnavailable, HttpStatusCode.ServiceUnavailable]);
        await using var gone = new FalcoWebhook(new Uri("http://127.0.0.1:9/alerts"), NullLogger.Instance, dead);
        gone.Post(FalcoAlert.For(Shell, "b", null, DateTimeOffset.UtcNow));
        for (var i = 0; i < 100 && gone.Dropped == 0; i++)
        {
            await Task.Delay(50);
        }

        Assert.Equal(1, gone.Dropped);
        Assert.Equal(0, gone.Sent);
        Assert.Equal(3, dead.Requests);
    }

    /// <summary>Answers each request with the next status of the list (the last one repeats).</summary>
    private sealed class Flaky(HttpStatusCode[] statuses) : HttpMessageHandler
    {
        private int _requests;

        public int Requests => _requests;

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var body = await request.Content!.ReadAsStringAsync(cancellationToken);
            Assert.Equal("shell-under-function", JsonDocument.Parse(body).RootElement.GetProperty("rule").GetString());
            var n = Interlocked.Increment(ref _requests);
            return new HttpResponseMessage(statuses[Math.Min(n, statuses.Length) - 1]);
        }
    }
}
