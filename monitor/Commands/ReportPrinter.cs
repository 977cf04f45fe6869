using FaaSMon.Workload;

namespace FaaSMon.Monitor.Commands;

/// <summary>A workload report as plain, aligned lines: readable on a terminal and in CI logs alike.</summary>
internal static class ReportPrinter
{
    public static void Print(WorkloadReport report)
    {
        Console.WriteLine();
        Console.WriteLine($"Benign traffic: {report.BenignSent} requests, {report.BenignOk} answered as expected " +
                          $"({report.BenignByFunction.Sum(f => f.DeliberateErrors)} of them deliberate 401/402/404), {report.BenignFailed} failed");
        foreach (var f in report.BenignByFunction.Where(f => f.Sent > 0))
        {
            Console.WriteLine($"  {f.Function,-34} sent {f.Sent,4}  ok {f.Ok,4}  failed {f.Failed,3}");
        }

        if (report.Attacks.Count > 0)
        {
            Console.WriteLine($"Attacks: {report.Attacks.Count(a => a.Succeeded)}/{report.Attacks.Count} verified successful");
            foreach (var a in report.Attacks)
            {
                Console.WriteLine($"  {(a.Succeeded ? "SUCCEEDED" : "FAILED   ")} {a.Family,-18} trace {a.TraceId}  {a.Evidence}");
            }
        }

        Console.WriteLine($"{report.RequestsSent} requests in {report.Duration.TotalSeconds:F1} s" +
                          (report.GroundTruthPath is null ? "" : $"; ground truth: {report.GroundTruthPath}"));
    }
}
