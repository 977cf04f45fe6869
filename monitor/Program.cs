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
return await root.Parse(args).InvokeAsync();
