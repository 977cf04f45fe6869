using Microsoft.Extensions.Logging;

namespace FaaSMon.Workload;

/// <summary>The driver's log messages. Secret values never appear: only names and lengths.</summary>
internal static partial class WorkloadLog
{
    [LoggerMessage(Level = LogLevel.Information, Message = "Workload against {Gateway}: {Benign} benign requests, attacks [{Attacks}], seed {Seed}, concurrency {Concurrency}")]
    public static partial void Starting(ILogger logger, Uri gateway, int benign, string attacks, int seed, int concurrency);

    [LoggerMessage(Level = LogLevel.Information, Message = "Photo host {PhotoHost}, attacker server {Attacker}, reverse-shell listener 127.0.0.1:{ShellPort}")]
    public static partial void ServersStarted(ILogger logger, Uri photoHost, Uri attacker, int shellPort);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Benign {Kind} -> {Function} answered {Status}")]
    public static partial void BenignAnswered(ILogger logger, string kind, string function, string status);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Benign {Kind} -> {Function} answered {Status}, expected {Expected}")]
    public static partial void BenignUnexpected(ILogger logger, string kind, string function, string status, string expected);

    [LoggerMessage(Level = LogLevel.Information, Message = "Attack {AttackId} {Step} -> {Function} answered {Status}")]
    public static partial void AttackStep(ILogger logger, string attackId, string step, string function, string status);

    [LoggerMessage(Level = LogLevel.Information, Message = "Exfiltration with nonce {Nonce} arrived: {EnvironmentCount} environment variables; {Summary}")]
    public static partial void ExfilReceived(ILogger logger, string nonce, int environmentCount, string summary);

    [LoggerMessage(Level = LogLevel.Information, Message = "Attack {AttackId} verified: {Evidence}")]
    public static partial void AttackSucceeded(ILogger logger, string attackId, string evidence);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Attack {AttackId} not verified: {Evidence}")]
    public static partial void AttackFailed(ILogger logger, string attackId, string evidence);

    [LoggerMessage(Level = LogLevel.Error, Message = "Attack {AttackId} crashed")]
    public static partial void AttackCrashed(ILogger logger, string attackId, Exception exception);

    [LoggerMessage(Level = LogLevel.Information, Message = "Workload done in {Seconds:F1}s: benign {Ok}/{Sent} as expected, attacks {Succeeded}/{Attacks} verified, {Requests} requests, ground truth {GroundTruth}")]
    public static partial void Finished(ILogger logger, double seconds, int ok, int sent, int succeeded, int attacks, int requests, string groundTruth);
}
