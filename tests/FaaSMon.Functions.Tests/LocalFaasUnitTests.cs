using FaaSMon.LocalFaaS;

namespace FaaSMon.Functions.Tests;

public sealed class LocalFaasUnitTests
{
    [Theory]
    [InlineData("10", 10_000)]
    [InlineData("10s", 10_000)]
    [InlineData("1m30s", 90_000)]
    [InlineData("500ms", 500)]
    [InlineData("1h", 3_600_000)]
    public void Timeouts_read_as_OpenFaaS_reads_them(string text, int milliseconds)
    {
        Assert.True(GoDuration.TryParse(text, out var value));
        Assert.Equal(TimeSpan.FromMilliseconds(milliseconds), value);
    }

    [Theory]
    [InlineData("")]
    [InlineData("ten seconds")]
    [InlineData("10x")]
    [InlineData("s10")]
    public void Invalid_timeouts_are_refused(string text) => Assert.False(GoDuration.TryParse(text, out _));

    [Theory]
    [InlineData("product-catalog-api", true)]
    [InlineData("echo.openfaas-fn", true)]
    [InlineData("a", true)]
    [InlineData("..", false)]
    [InlineData("../x", false)]
    [InlineData(".x", false)]
    [InlineData("-x", false)]
    [InlineData("a b", false)]
    [InlineData("a\u0001b", false)]
    [InlineData("", false)]
    public void Function_names_follow_the_gateway_pattern_and_a_dns_label(string name, bool valid) =>
        Assert.Equal(valid, FunctionName.IsValid(name));

    [Fact]
    public void A_name_longer_than_a_dns_label_is_refused() => Assert.False(FunctionName.IsValid(new string('a', 64)));

    [Fact]
    public void Untrusted_names_are_described_printably_and_bounded()
    {
        var described = FunctionName.Describe("evil\u0007" + new string('x', 10_000));
        Assert.DoesNotContain('\u0007', described);
        Assert.True(described.Length < 80);
    }

    [Theory]
    [InlineData("128Mi", 134_217_728L)]
    [InlineData("1Gi", 1_073_741_824L)]
    [InlineData("64M", 64_000_000L)]
    [InlineData("1000", 1000L)]
    public void Memory_limits_parse_as_kubernetes_quantities(string text, long bytes) =>
        Assert.Equal(bytes, FunctionDeployment.ParseMemory(text));

    [Fact]
    public void A_bad_memory_limit_is_an_error() => Assert.Throws<FormatException>(() => FunctionDeployment.ParseMemory("lots"));

    [Fact]
    public void The_repository_stack_file_names_fifteen_functions_with_their_code()
    {
        var stack = StackFile.Load(LocalFaasHost.FindStackFile()!);
        Assert.Equal(15, stack.Functions.Count);
        foreach (var function in stack.Functions.Values)
        {
            Assert.True(File.Exists(Path.Combine(stack.HandlerDirectory(function), "handler.js")), function.Handler);
            Assert.True(File.Exists(Path.Combine(stack.TemplateDirectory(function), "index.js")), function.Lang);
        }
    }

    [Fact]
    public void A_stack_file_with_a_hostile_function_name_is_refused()
    {
        var path = Path.Combine(Path.GetTempPath(), $"stack-{Guid.NewGuid():N}.yml");
        File.WriteAllText(path, "version: 1.0\nprovider:\n  name: openfaas\nfunctions:\n  ../etc:\n    lang: node20-faasmon\n    handler: ./x\n");
        try
        {
            var error = Assert.Throws<InvalidDataException>(() => StackFile.Load(path));
            Assert.Contains("invalid function name", error.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Cgroup_paths_name_function_and_instance_on_v1_and_v2_hosts()
    {
        Assert.Equal(("fn", "fn-abc123"), CgroupTree.Parse("0::/faasmon/fn/fn-abc123\n"));
        Assert.Equal(("fn", "fn-abc123"), CgroupTree.Parse("8:pids:/faasmon/fn/fn-abc123\n4:memory:/process_api/x/faasmon/fn/fn-abc123\n0::/"));
        Assert.Null(CgroupTree.Parse("0::/user.slice/session-1.scope\n"));
    }

    [Fact]
    public void State_under_tmp_is_refused_because_containers_hide_it()
    {
        var error = Assert.Throws<ArgumentException>(() => new RuntimePaths("/tmp/faasmon-state", "/bin/true"));
        Assert.Contains("/tmp", error.Message);
    }
}
