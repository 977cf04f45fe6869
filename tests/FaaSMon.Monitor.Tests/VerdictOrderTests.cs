using System.Threading.Channels;
using FaaSMon.Classifier.Inference;
using FaaSMon.Core;
using FaaSMon.Grapher;
using FaaSMon.Monitor.Hosting;
using FaaSMon.Monitor.Store;
using Microsoft.Extensions.Logging.Abstractions;

namespace FaaSMon.Monitor.Tests;

/// <summary>
/// The inference service serves first verdicts before revisions: in a burst, a graph nobody has a verdict for does not
/// wait behind final graphs that only revise verdicts already given, and a provisional graph whose final one is already
/// queued is not classified at all.
/// </summary>
public sealed class VerdictOrderTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), $"faasmon-order-{Guid.NewGuid():N}");
    private static readonly string[] Ids = ["a", "c", "d", "e"];
    private readonly VerdictStore _store;

    public VerdictOrderTests() => _store = VerdictStore.Open(_dir);

    public void Dispose()
    {
        _store.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task First_verdicts_go_before_revisions_and_a_superseded_provisional_is_skipped()
    {
        var pipeline = new VerdictPipeline(_store, GraphClassifier.Open(null, null, NullLogger.Instance), new ComponentHealth(), null, NullLogger.Instance);
        var handled = new List<(string Id, bool Final)>();
        using var burstQueued = new ManualResetEventSlim();
        pipeline.Stored += n =>
        {
            handled.Add((n.Graph.GraphId, n.Final));
            burstQueued.Wait(TimeSpan.FromSeconds(30)); // the first verdict is being stored while the burst arrives
        };
        var channel = Channel.CreateUnbounded<FinishedInvocation>();

        // a is answered provisionally; while that verdict is stored, the burst is queued
        channel.Writer.TryWrite(Invocation("a", provisional: true));
        var run = Task.Run(() => pipeline.RunInvocationsAsync(channel.Reader, CancellationToken.None));
        await WaitForAsync(() => handled.Count == 1);
        foreach (var invocation in new[]
        {
            Invocation("a", provisional: false), // revises a verdict already given
            Invocation("c", provisional: true),
            Invocation("d", provisional: true),
            Invocation("d", provisional: false), // d's final came before d's provisional was handled: it gives d's first verdict
            Invocation("e", provisional: false), // no provisional: its final is its first verdict
        })
        {
            channel.Writer.TryWrite(invocation);
        }

        burstQueued.Set();
        channel.Writer.Complete();
        await run.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal([("a", false), ("c", false), ("d", true), ("e", true), ("a", true)], handled);
        Assert.Equal(5, pipeline.Classified);
        Assert.Equal([true, false, true, true], Ids.Select(id => _store.Find($"span-{id}")!.Summary.Final));
    }

    [Fact]
    public void A_provisional_graph_is_kept_in_memory_and_its_final_one_written()
    {
        var graph = Invocation("p", provisional: true).Graph;
        var verdict = new Verdict(graph.GraphId, graph.CallId, null, graph.Function, 0.1, "gin-supervised", false, [], [], []);

        var id = _store.AddVerdict(graph, null, "span-p", verdict, final: false, null, DateTimeOffset.UtcNow);
        var provisional = _store.Find(id)!.Summary;
        Assert.Null(_store.GraphPath(provisional));
        Assert.Same(graph, _store.ProvisionalGraph(id));

        _store.AddVerdict(graph, null, "span-p", verdict, final: true, null, DateTimeOffset.UtcNow);
        var final = _store.Find(id)!.Summary;
        Assert.True(final.Final);
        var written = ProvenanceGraphJson.Deserialize(File.ReadAllText(_store.GraphPath(final)!));
        Assert.Equal(graph.Nodes.Select(n => n.Label), written.Nodes.Select(n => n.Label));
        Assert.Equal(graph.Edges, written.Edges);
        Assert.Null(_store.ProvisionalGraph(id));

        // a late provisional (it lost a race with its final) changes neither the verdict nor the file
        _store.AddVerdict(graph, null, "span-p", verdict with { Score = 0.9 }, final: false, null, DateTimeOffset.UtcNow);
        Assert.Equal(0.1, _store.Find(id)!.Summary.Score);
        Assert.NotNull(_store.GraphPath(_store.Find(id)!.Summary));
    }

    private static FinishedInvocation Invocation(string id, bool provisional)
    {
        var graph = new ProvenanceGraph(id, GraphScope.Invocation, $"call-{id}", null, "product-catalog-api", "product-catalog-api-1",
            [new GraphNode(0, NodeKind.Invocation, "GET /categories", new Dictionary<string, string> { ["role"] = "self" }), new GraphNode(1, NodeKind.Process, "node")],
            [new GraphEdge(0, 1, EdgeKind.Read, "read", 1, 1)]);
        return new FinishedInvocation(graph, 0, null, $"span-{id}", null, null, "response") { Provisional = provisional };
    }

    private static async Task WaitForAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (DateTime.UtcNow < deadline && !condition())
        {
            await Task.Delay(20);
        }
    }
}
