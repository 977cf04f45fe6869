using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using FaaSMon.LocalFaaS;

namespace FaaSMon.Functions.Tests;

/// <summary>LocalFaaS against real processes: the gateway routes, warm containers, isolation, crashes, scaling.</summary>
[Collection("localfaas")]
public sealed class LocalFaasTests(LocalFaasFixture faas)
{
    private static readonly string[] SeededCategories = ["bags", "cameras", "lenses", "tripods"];

    [Fact]
    public async Task Catalog_api_serves_the_seeded_store_through_the_gateway()
    {
        var categories = await faas.Gateway.GetFromJsonAsync<JsonElement>("function/product-catalog-api/categories");
        var names = categories.EnumerateArray().Select(c => c.GetProperty("name").GetString()).ToList();
        Assert.Equivalent(SeededCategories, names);

        using var response = await faas.Gateway.GetAsync("function/product-catalog-api/products/p-cam-001");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var product = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("p-cam-001", product.GetProperty("id").GetString());
        Assert.Equal("cameras", product.GetProperty("category").GetString());
        Assert.True(product.GetProperty("price").GetDecimal() > 0);

        Assert.True(Guid.TryParse(response.Headers.GetValues("X-Call-Id").Single(), out _));
        var startNs = long.Parse(response.Headers.GetValues("X-Start-Time").Single(), System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(DateTimeOffset.FromUnixTimeMilliseconds(startNs / 1_000_000), DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow);
        Assert.True(double.Parse(response.Headers.GetValues("X-Duration-Seconds").Single(), System.Globalization.CultureInfo.InvariantCulture) > 0);
    }

    [Fact]
    public async Task A_call_id_sent_by_the_client_is_kept()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "function/product-catalog-api/categories");
        request.Headers.Add("X-Call-Id", "client-chosen-id-42");
        using var response = await faas.Gateway.SendAsync(request);
        Assert.Equal("client-chosen-id-42", response.Headers.GetValues("X-Call-Id").Single());
    }

    [Fact]
    public async Task System_routes_answer_401_without_credentials_as_OpenFaaS_does()
    {
        using var anonymous = await faas.Gateway.GetAsync("system/functions");
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        Assert.Equal("Basic realm=\"Restricted\"", anonymous.Headers.WwwAuthenticate.Single().ToString());
        Assert.Equal("invalid credentials", await anonymous.Content.ReadAsStringAsync());

        using var wrong = new HttpRequestMessage(HttpMethod.Get, "system/functions");
        wrong.Headers.Authorization = new("Basic", Convert.ToBase64String("admin:guess"u8.ToArray()));
        using var wrongResponse = await faas.Gateway.SendAsync(wrong);
        Assert.Equal(HttpStatusCode.Unauthorized, wrongResponse.StatusCode);
    }

    [Fact]
    public async Task System_functions_lists_every_function_with_replicas_and_invocation_counts()
    {
        var before = await Status("product-catalog-api");
        using (await faas.Gateway.GetAsync("function/product-catalog-api/categories"))
        {
        }

        var list = await faas.Admin.GetFromJsonAsync<JsonElement>("system/functions");
        var byName = list.EnumerateArray().ToDictionary(f => f.GetProperty("name").GetString()!);
        Assert.Equal(15, byName.Count);
        Assert.Contains("product-purchase-authorize-cc", byName.Keys);
        var catalog = byName["product-catalog-api"];
        Assert.Equal(2, catalog.GetProperty("replicas").GetInt32());
        Assert.Equal(2, catalog.GetProperty("availableReplicas").GetInt32());
        Assert.Equal(before.GetProperty("invocationCount").GetDouble() + 1, catalog.GetProperty("invocationCount").GetDouble());

        var info = await faas.Admin.GetFromJsonAsync<JsonElement>("system/info");
        Assert.Equal("faasmon-localfaas", info.GetProperty("provider").GetProperty("provider").GetString());
    }

    [Fact]
    public async Task Two_invocations_reach_the_same_warm_process_which_keeps_a_private_tmp()
    {
        await using var photos = await TestHttpServer.StartAsync();
        var name = $"warm-{Guid.NewGuid():N}.png";
        var pidBefore = Pids("product-photos-receive").Single();

        for (var i = 0; i < 2; i++)
        {
            using var response = await faas.Gateway.PostAsJsonAsync("function/product-photos-receive",
                new { photographer = "ph-001", product = "p-cam-001", url = new Uri(photos.BaseUrl, name).ToString() });
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        // The second invocation found the file the first left in /tmp: one download only.
        Assert.Equal(1, photos.Requests);
        Assert.Equal(pidBefore, Pids("product-photos-receive").Single());
        Assert.True(File.Exists($"/proc/{pidBefore}/root/tmp/{name}"), "the file is in the container's /tmp");
        Assert.False(File.Exists($"/tmp/{name}"), "the host's /tmp does not see it");
        var other = Pids("product-photos-report").Single();
        Assert.False(File.Exists($"/proc/{other}/root/tmp/{name}"), "another function's container does not see it");
    }

    [Fact]
    public void Function_processes_are_found_by_name_and_their_cgroup_names_function_and_instance()
    {
        var pgrep = Process.Start(new ProcessStartInfo("pgrep", ["-f", "index.js"]) { RedirectStandardOutput = true })!;
        var found = pgrep.StandardOutput.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToHashSet();
        pgrep.WaitForExit();

        var ours = faas.Host.Instances;
        Assert.Equal(16, ours.Count); // 15 functions, product-catalog-api with 2 replicas
        foreach (var (function, instance, pid) in ours)
        {
            Assert.NotNull(pid);
            Assert.Contains(pid.Value, found);
            Assert.Equal((function, instance), CgroupTree.Parse(File.ReadAllText($"/proc/{pid}/cgroup")));
            Assert.Equal("node index.js", File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ').Trim());
        }
    }

    [Fact]
    public void Instances_run_unprivileged_in_namespaces_of_their_own()
    {
        var (_, _, pid) = faas.Host.Instances.First(i => i.Function == "product-purchase-authorize-cc");
        var status = File.ReadAllLines($"/proc/{pid}/status");
        Assert.Contains(status, l => l.StartsWith("Uid:", StringComparison.Ordinal) && l.Split('\t')[1] == "65534");
        // PID 2 inside its namespace: PID 1 is the container's init, as fwatchdog is in OpenFaaS.
        Assert.EndsWith("\t2", status.Single(l => l.StartsWith("NSpid:", StringComparison.Ordinal)), StringComparison.Ordinal);
        foreach (var ns in new[] { "mnt", "pid", "uts", "ipc" })
        {
            Assert.NotEqual(ReadLink($"/proc/self/ns/{ns}"), ReadLink($"/proc/{pid}/ns/{ns}"));
        }

        // Exactly the secrets the stack lists for this function, mounted where OpenFaaS mounts them.
        var listed = StackFile.Load(LocalFaasHost.FindStackFile()!).Functions["product-purchase-authorize-cc"].Secrets;
        var mounted = Directory.GetFiles($"/proc/{pid}/root{RuntimePaths.SecretMountPath}").Select(Path.GetFileName);
        Assert.NotEmpty(listed);
        Assert.Equal(listed.Order(), mounted.Order());
        Assert.Empty(Directory.GetFiles(RuntimePaths.SecretMountPath));
    }

    [Fact]
    public async Task An_unknown_function_is_404()
    {
        using var response = await faas.Gateway.GetAsync("function/no-such-function");
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Contains("no-such-function", await response.Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData("..%2Fx")]
    [InlineData("a%01b")]
    [InlineData(".hidden")]
    [InlineData("-rf")]
    [InlineData("a%0Ab")]
    public async Task Hostile_function_names_are_rejected(string name)
    {
        using var invoke = await faas.Gateway.GetAsync($"function/{name}");
        Assert.Equal(HttpStatusCode.BadRequest, invoke.StatusCode);
        using var status = await faas.Admin.GetAsync($"system/function/{name}");
        Assert.Equal(HttpStatusCode.BadRequest, status.StatusCode);
    }

    [Fact]
    public async Task A_ten_kilobyte_name_is_rejected_and_the_gateway_keeps_serving()
    {
        using var response = await faas.Gateway.GetAsync($"function/{new string('a', 10_000)}");
        Assert.True(response.StatusCode is HttpStatusCode.BadRequest or HttpStatusCode.RequestUriTooLong, response.StatusCode.ToString());
        using var deploy = await faas.Admin.PostAsJsonAsync("system/functions", new { service = new string('a', 10_000), image = "x" });
        Assert.Equal(HttpStatusCode.BadRequest, deploy.StatusCode);
        using var after = await faas.Gateway.GetAsync("function/product-catalog-api/categories");
        Assert.Equal(HttpStatusCode.OK, after.StatusCode);
    }

    [Fact]
    public async Task Deploying_code_the_provider_does_not_have_is_refused()
    {
        using var response = await faas.Admin.PostAsJsonAsync("system/functions", new { service = "not-in-the-stack", image = "evil/image:latest" });
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("not-in-the-stack", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task A_crashed_function_is_restarted_and_the_error_is_visible()
    {
        var old = Pids("product-photos-register").Single();
        Process.GetProcessById(old).Kill();

        var status = await WaitFor("product-photos-register", s =>
            s.GetProperty("instances")[0].GetProperty("restarts").GetInt32() >= 1
            && s.GetProperty("instances")[0].GetProperty("state").GetString() == "ready");
        var instance = status.GetProperty("instances")[0];
        Assert.Contains("exited with code 137", instance.GetProperty("lastError").GetString());
        Assert.NotEqual(old, instance.GetProperty("pid").GetInt32());

        using var response = await faas.Gateway.PostAsJsonAsync("function/product-photos-register",
            new { name = "Ansel Adams", email = $"ansel-{Guid.NewGuid():N}@example.com", phone = "+1 555 0100" });
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
    }

    [Fact]
    public async Task Scaling_starts_and_stops_real_instances()
    {
        using (var up = await faas.Admin.PostAsJsonAsync("system/scale-function/product-photos-success", new { serviceName = "product-photos-success", replicas = 2 }))
        {
            Assert.Equal(HttpStatusCode.Accepted, up.StatusCode);
        }

        var pids = Pids("product-photos-success");
        Assert.Equal(2, pids.Distinct().Count());
        Assert.All(pids, p => Assert.True(Directory.Exists($"/proc/{p}")));

        using (var down = await faas.Admin.PostAsJsonAsync("system/scale-function/product-photos-success", new { serviceName = "product-photos-success", replicas = 1 }))
        {
            Assert.Equal(HttpStatusCode.Accepted, down.StatusCode);
        }

        Assert.Single(Pids("product-photos-success"));
        var stopped = pids.Except(Pids("product-photos-success")).Single();
        Assert.False(Directory.Exists($"/proc/{stopped}"), "the scaled-down instance's process is gone");

        using var tooMany = await faas.Admin.PostAsJsonAsync("system/scale-function/product-photos-success", new { serviceName = "product-photos-success", replicas = 1000 });
        Assert.Equal(HttpStatusCode.BadRequest, tooMany.StatusCode);
    }

    [Fact]
    public async Task A_request_over_its_timeout_is_504()
    {
        await using var slow = await TestHttpServer.StartAsync(delay: TimeSpan.FromSeconds(4));
        using var request = new HttpRequestMessage(HttpMethod.Post, "function/product-photos-receive")
        {
            Content = JsonContent.Create(new { photographer = "ph-001", product = "p-cam-002", url = new Uri(slow.BaseUrl, $"slow-{Guid.NewGuid():N}.png").ToString() }),
        };
        request.Headers.Add("X-Timeout", "1s");
        var watch = Stopwatch.StartNew();
        using var response = await faas.Gateway.SendAsync(request);
        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(4), $"the gateway gave up after {watch.Elapsed}, not the function");
    }

    [Fact]
    public async Task Requests_over_max_inflight_get_429()
    {
        var status = await Status("product-photos-receive");
        var limit = int.Parse(status.GetProperty("envVars").GetProperty("max_inflight").GetString()!, System.Globalization.CultureInfo.InvariantCulture);
        await using var slow = await TestHttpServer.StartAsync(delay: TimeSpan.FromSeconds(2));
        var calls = Enumerable.Range(0, limit + 2).Select(async i =>
        {
            using var response = await faas.Gateway.PostAsJsonAsync("function/product-photos-receive",
                new { photographer = "ph-002", product = "p-len-001", url = new Uri(slow.BaseUrl, $"busy-{i}-{Guid.NewGuid():N}.png").ToString() });
            return response.StatusCode;
        }).ToList();
        var codes = await Task.WhenAll(calls);
        Assert.Contains(HttpStatusCode.TooManyRequests, codes);
        Assert.Contains(HttpStatusCode.OK, codes);
    }

    private List<int> Pids(string function) =>
        [.. faas.Host.Instances.Where(i => i.Function == function).Select(i => i.Pid ?? throw new InvalidOperationException($"{i.Instance} has no process"))];

    private async Task<JsonElement> Status(string function) =>
        await faas.Admin.GetFromJsonAsync<JsonElement>($"system/function/{function}");

    private async Task<JsonElement> WaitFor(string function, Func<JsonElement, bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            var status = await Status(function);
            if (condition(status))
            {
                return status;
            }

            Assert.True(DateTime.UtcNow < deadline, $"{function} did not reach the expected state: {status}");
            await Task.Delay(100);
        }
    }

    private static string? ReadLink(string path) => new FileInfo(path).LinkTarget;
}
