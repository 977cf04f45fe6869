using System.CommandLine;
using FaaSMon.LocalFaaS;

namespace FaaSMon.Monitor.Commands;

internal static class LocalFaasCommand
{
    public static readonly Option<int> Port = new("--port")
    {
        Description = "Gateway port (0 picks a free one).",
        DefaultValueFactory = _ => 8081,
    };

    public static readonly Option<string> Bind = new("--bind")
    {
        Description = "Address the gateway listens on.",
        DefaultValueFactory = _ => "127.0.0.1",
    };

    public static readonly Option<FileInfo?> Stack = new("--stack")
    {
        Description = "The faas-cli stack file whose functions to run (default: functions/stack.yml of this checkout).",
    };

    public static readonly Option<DirectoryInfo?> State = new("--state-dir")
    {
        Description = $"Where the database, secrets and instances live (default {LocalFaasOptions.DefaultStateDirectory}; not under /tmp).",
    };

    public static readonly Option<Uri?> FunctionGateway = new("--function-gateway")
    {
        Description = "Gateway URL the functions call each other through (e.g. FaaSMon's proxy); default this gateway.",
    };

    public static readonly Option<bool> Verbose = new("--verbose", "-v") { Description = "Log function output and every request." };

    public static Command Create()
    {
        var command = new Command("localfaas",
            "Run the OpenFaaS-compatible local runtime: gateway on --port, every function of the stack as warm lightweight containers " +
            "(mount+PID+UTS namespaces, private /tmp, own cgroup), PostgreSQL for hello-retail. Needs root. " +
            "Admin credentials are in <state-dir>/secrets/basic-auth-{user,password}.")
        {
            Port, Bind, Stack, State, FunctionGateway, Verbose,
        };
        command.SetAction(async (parse, ct) =>
        {
            using var logging = CliLogging.Create(parse.GetValue(Verbose));
            await using var host = await LocalFaasHost.StartAsync(Options(parse), logging, ct);
            Console.WriteLine($"LocalFaaS gateway: {host.GatewayUrl}");
            Console.WriteLine($"admin credentials: {AdminSecretsHint(parse)}");
            Console.WriteLine("Ctrl+C stops it.");
            try
            {
                await Task.Delay(Timeout.Infinite, ct);
            }
            catch (OperationCanceledException)
            {
            }

            return 0;
        });
        return command;
    }

    public static LocalFaasOptions Options(ParseResult parse) => new()
    {
        Port = parse.GetValue(Port),
        BindAddress = parse.GetValue(Bind)!,
        StackFile = parse.GetValue(Stack)?.FullName,
        StateDirectory = parse.GetValue(State)?.FullName,
        FunctionGatewayUrl = parse.GetValue(FunctionGateway),
    };

    private static string AdminSecretsHint(ParseResult parse) =>
        Path.Combine(parse.GetValue(State)?.FullName ?? LocalFaasOptions.DefaultStateDirectory, "secrets", "basic-auth-{user,password}");
}
