using FaaSMon.Monitor.Commands;

namespace FaaSMon.Monitor.Tests;

public sealed class CommandLineTests
{
    [Theory]
    [InlineData("http://127.0.0.1:18081")]
    [InlineData("http://localhost:8080/")]
    [InlineData("https://gateway.example:8443")]
    public void The_workload_takes_a_gateway_url(string url)
    {
        var parse = WorkloadCommand.Create().Parse(["--gateway", url, "--benign", "5"]);
        Assert.Empty(parse.Errors);
        Assert.Equal(new Uri(url), parse.GetValue(WorkloadCommand.Gateway));
    }

    [Theory]
    [InlineData("127.0.0.1:8081")]
    [InlineData("ftp://127.0.0.1/")]
    [InlineData("not a url")]
    public void A_gateway_that_is_not_an_http_url_is_a_clear_error(string url)
    {
        var parse = WorkloadCommand.Create().Parse(["--gateway", url]);
        Assert.Contains(parse.Errors, e => e.Message.Contains("--gateway must be an absolute http(s) URL", StringComparison.Ordinal));
    }

    [Fact]
    public void Collect_needs_an_output_folder_and_a_valid_backend()
    {
        Assert.NotEmpty(CollectCommand.Create().Parse(["--benign", "10"]).Errors);
        Assert.NotEmpty(CollectCommand.Create().Parse(["--out", "/var/lib/faasmon/x", "--backend", "dtrace"]).Errors);
        Assert.NotEmpty(CollectCommand.Create().Parse(["--out", "/var/lib/faasmon/x", "--runs-per-family", "0"]).Errors);
        Assert.Empty(CollectCommand.Create().Parse(["--out", "/var/lib/faasmon/x", "--benign", "10", "--attacks", "all"]).Errors);
    }

    [Fact]
    public void Graph_refuses_a_hostile_call_id_and_an_unknown_format()
    {
        Assert.NotEmpty(GraphCommand.Create().Parse(["--data", "/var/lib/faasmon", "--call-id", "a b\u0001"]).Errors);
        Assert.NotEmpty(GraphCommand.Create().Parse(["--data", "/var/lib/faasmon", "--call-id", "abc", "--format", "svg"]).Errors);
        Assert.NotEmpty(GraphCommand.Create().Parse(["--data", "/var/lib/faasmon", "--call-id", new string('x', 200)]).Errors);
    }
}
