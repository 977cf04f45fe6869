using System.CommandLine;
using FaaSMon.Monitor.Commands;

var root = new RootCommand("FaaSMon: provenance-graph intrusion detection for OpenFaaS functions.")
{
    LocalFaasCommand.Create(),
    WorkloadCommand.Create(),
    DemoCommand.Create(),
    BenchCommand.Create(),
    ProxyCommand.Create(),
    TrainCommand.Create(),
    EvalCommand.Create(),
    TraceCommand.Create(),
    NetCollectCommand.Create(),
    CollectCommand.Create(),
    GraphCommand.Create(),
    ServeCommand.Create(),
};
// Ctrl-C or SIGTERM cancels the command's token; it then has this long to stop what it started (LocalFaaS and its
// PostgreSQL, tracers, open invocations to store) before the process is ended. The default of 2 s cut that short and
// left PostgreSQL running.
return await root.Parse(args).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = TimeSpan.FromSeconds(60) });
