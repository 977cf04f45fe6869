using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace FaaSMon.Monitor.Tests;

/// <summary>
/// <c>faasmon proxy</c> as users run it, a child process: unlike the in-process proxies of the proxy tests it runs
/// socket completions and requests inline on the epoll thread, so anything on the request path that blocked would
/// stall every connection here.
/// </summary>
public sealed class ProxyCommandTests
{
    [Fact]
    public async Task The_standalone_proxy_serves_every_request_under_load_and_records_each_one()
    {
        const int requests = 4000;
        const int concurrency = 100;
        await using var upstream = await StartUpstreamAsync();
        var data = Directory.CreateTempSubdirectory("faasmon-proxy-command-").FullName;
        var port = FreePort();
        using var proxy = StartProxy(port, upstream.Urls.Single(), data);
        try
        {
            using var client = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = concurrency, UseProxy = false });
            await WaitForPortAsync(proxy, port);
            var next = 0;
            var callIds = new System.Collections.Concurrent.ConcurrentBag<string>();
            var failures = new System.Collections.Concurrent.ConcurrentBag<string>();
            await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
            {
                while (Interlocked.Increment(ref next) <= requests)
                {
                    // every fifth request waits on the upstream, so slow and fast calls share the proxy's threads
                    var slow = next % 5 == 0 ? "?slow=1" : "";
                    using var response = await client.GetAsync($"http://127.0.0.1:{port}/function/echo{slow}");
                    var body = await response.Content.ReadAsStringAsync();
                    if (response.StatusCode != HttpStatusCode.OK || body != "ok")
                    {
                        failures.Add($"{(int)response.StatusCode} {body}");
                    }

                    callIds.Add(response.Headers.GetValues("X-Call-Id").Single());
                }
            }));

            Assert.Empty(failures);
            Assert.Equal(requests, callIds.Distinct().Count());

            // SIGTERM: a graceful stop writes what is queued
            Assert.Equal(0, Kill(-proxy.Id, 15));
            await proxy.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
            var recorded = Directory.EnumerateFiles(Path.Combine(data, "records"), "invocations-*.ndjson")
                .SelectMany(File.ReadLines)
                .Select(line => JsonDocument.Parse(line).RootElement.GetProperty("callId").GetString()!)
                .ToHashSet();
            Assert.True(recorded.SetEquals(callIds), $"{recorded.Count} records for {callIds.Count} responses, {recorded.Except(callIds).Count()} unknown");
        }
        finally
        {
            if (!proxy.HasExited)
            {
                _ = Kill(-proxy.Id, 9);
                await proxy.WaitForExitAsync();
            }

            Directory.Delete(data, recursive: true);
        }
    }

    private static Process StartProxy(int port, string upstream, string data)
    {
        // setsid: the proxy leads its own process group, killed as a group whatever happens to the test
        var info = new ProcessStartInfo("setsid") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { Environment.ProcessPath!, Path.Combine(AppContext.BaseDirectory, "faasmon.dll"), "proxy",
            "--listen", $"127.0.0.1:{port}", "--upstream", upstream, "--data-dir", data, "--no-pcap" })
        {
            info.ArgumentList.Add(a);
        }

        var process = Process.Start(info)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, e) => { if (e.Data is { } line) { Console.Error.WriteLine($"proxy: {line}"); } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    private static async Task<WebApplication> StartUpstreamAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        app.Run(async context =>
        {
            if (context.Request.Query.ContainsKey("slow"))
            {
                await Task.Delay(20);
            }

            await context.Response.WriteAsync("ok");
        });
        await app.StartAsync();
        return app;
    }

    private static async Task WaitForPortAsync(Process proxy, int port)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            if (proxy.HasExited)
            {
                Assert.Fail($"faasmon proxy exited ({proxy.ExitCode}) before listening");
            }

            try
            {
                using var socket = new TcpClient();
                await socket.ConnectAsync(IPAddress.Loopback, port);
                return;
            }
            catch (SocketException)
            {
                await Task.Delay(100);
            }
        }

        Assert.Fail($"faasmon proxy did not listen on 127.0.0.1:{port} within 60 s");
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    // DllImport rather than LibraryImport: the generated stub needs AllowUnsafeBlocks, which this project does not set.
#pragma warning disable SYSLIB1054
    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);
#pragma warning restore SYSLIB1054
}
