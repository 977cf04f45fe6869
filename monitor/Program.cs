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
// What a command could not do ends in one line that says why (a missing file, a capability the machine lacks), not a
// stack trace; FAASMON_DEBUG=1 prints the trace too.
try
{
    return await root.Parse(args).InvokeAsync(new InvocationConfiguration
    {
        ProcessTerminationTimeout = TimeSpan.FromSeconds(60),
        EnableDefaultExceptionHandler = false,
    });
}
catch (OperationCanceledException)
{
    return 130;
}
catch (Exception e)
{
    var because = string.Join(": ", Causes(e).Select(c => c.Message).Distinct());
    await Console.Error.WriteLineAsync($"faasmon: {because}");
    if (Environment.GetEnvironmentVariable("FAASMON_DEBUG") == "1")
    {
        await Console.Error.WriteLineAsync(e.ToString());
    }

    return 1;
}

static IEnumerable<Exception> Causes(Exception e)
{
    for (Exception? c = e; c is not null; c = c.InnerException)
    {
        if (c is AggregateException { InnerExceptions.Count: 1 })
        {
            continue;
        }

        yield return c;
    }
}
