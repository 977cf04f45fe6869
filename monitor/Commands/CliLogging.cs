using Microsoft.Extensions.Logging;

namespace FaaSMon.Monitor.Commands;

internal static class CliLogging
{
    /// <param name="quiet">Warnings only, unless verbose: for commands that print their own progress (demo).</param>
    public static ILoggerFactory Create(bool verbose, bool quiet = false) => LoggerFactory.Create(b => b
        .AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss ";
        })
        .SetMinimumLevel(verbose ? LogLevel.Debug : quiet ? LogLevel.Warning : LogLevel.Information)
        // Function output and request-level framework logs are for --verbose.
        .AddFilter("Microsoft", verbose ? LogLevel.Information : LogLevel.Warning)
        .AddFilter("Yarp", verbose ? LogLevel.Information : LogLevel.Warning)
        .AddFilter("FaaSMon.LocalFaaS.Provider", verbose ? LogLevel.Debug : LogLevel.Warning)
        .AddFilter("FaaSMon.LocalFaaS.Store", verbose ? LogLevel.Debug : LogLevel.Warning));
}
