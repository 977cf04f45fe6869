using System.CommandLine;

namespace FaaSMon.Monitor.Commands;

/// <summary><c>faasmon bench &lt;component&gt;</c>: figures and ratios, never pass/fail (these machines are shared and noisy).</summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var command = new Command("bench", "Benchmarks that print figures and ratios: faasmon bench <component>.");
        // one subcommand per component, each in its own file:
        command.Subcommands.Add(ProxyBenchCommand.Create());
        command.Subcommands.Add(TracerBenchCommand.Create());
        command.Subcommands.Add(ClassifierBenchCommand.Create());
        command.Subcommands.Add(GrapherBenchCommand.Create());
        command.Subcommands.Add(SnapshotBenchCommand.Create());
        command.Subcommands.Add(ProxyBenchCommand.CreateYarpBaseline()); // hidden: a child of bench proxy
        return command;
    }
}
