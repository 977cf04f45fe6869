using System.CommandLine;
using FaaSMon.LocalFaaS;

namespace FaaSMon.Monitor.Commands;

internal static class DemoCommand
{
    public static readonly Option<int> Benign = new("--benign")
    {
        Description = "Benign requests to mix with the attacks.",
        DefaultValueFactory = _ => 60,
    };

    public static Command Create()
    {
        var command = new Command("demo",
            "The whole thing on this machine, no Docker, no OpenFaaS: start LocalFaaS with the hello-retail functions as real " +
            "warm containers, drive benign traffic and every attack family, and show what happened. Needs root.")
        {
            Benign, LocalFaasCommand.State, LocalFaasCommand.Verbose,
        };
        command.SetAction(async (parse, ct) =>
        {
            using var logging = CliLogging.Create(parse.GetValue(LocalFaasCommand.Verbose));
            var state = parse.GetValue(LocalFaasCommand.State)?.FullName ?? "/var/lib/faasmon/demo";
            Console.WriteLine($"Starting LocalFaaS (state in {state}) ...");
            await using var host = await LocalFaasHost.StartAsync(new LocalFaasOptions { Port = 0, StateDirectory = state }, logging, ct);
            Console.WriteLine($"LocalFaaS gateway {host.GatewayUrl} with {host.Instances.Count} warm function instances:");
            foreach (var (function, instance, pid) in host.Instances)
            {
                Console.WriteLine($"  {function,-32} {instance,-40} pid {pid}");
            }

            var groundTruth = Path.Combine(state, "ground-truth.jsonl");
            Console.WriteLine($"Driving {parse.GetValue(Benign)} benign requests and every attack family ...");
            var report = await WorkloadCommand.RunAsync(new()
            {
                Gateway = host.GatewayUrl,
                Benign = parse.GetValue(Benign),
                Attacks = ["all"],
                GroundTruthPath = groundTruth,
                KnownSecrets = host.SecretValues,
            }, logging, ct);
            Console.WriteLine($"Ground truth: {groundTruth}");
            return report.Attacks.All(a => a.Succeeded) ? 0 : 1;
        });
        return command;
    }
}
