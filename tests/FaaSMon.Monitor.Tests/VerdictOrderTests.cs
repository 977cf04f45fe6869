using System.Threading.Channels;
using FaaSMon.Classifier.Inference;
using FaaSMon.Core;
using FaaSMon.Grapher;
using FaaSMon.Monitor.Hosting;
using FaaSMon.Monitor.Store;
using Microsoft.Extensions.Logging.Abstractions;

namespace FaaSMon.Monitor.Tests;

/// <summary>
/// The inference service gives first verdicts and revisions lanes of their own: a graph nobody has a verdict for does not
/// wait behind a final graph that only revises a verdict already given, a revision never lands before the verdict it
/// revises, and a provisional graph whose final one is already queued is not classified at all.
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
    public async Task First_verdicts_do_not_wait_behind_a_revision_and_a_superseded_provisional_is_skipped()
    {
        var pipeline = new VerdictPipeline(_store, GraphClassifier.Open(null, null, NullLogger.Instance), new ComponentHealth(), null, NullLogger.Instance);
        var handled = new List<(string Id, bool Final)>();
        using var burstQueued = new ManualResetEventSlim();
        using var revisionMayFinish = new ManualResetEventSlim();
        var revisionDone = false;
        pipeline.Stored += n =>
        {
            lock (handled)
            {
                handled.Add((n.Graph.GraphId, n.Final));
            }

            if (n.Graph.GraphId == "c")
            {
                burstQueued.Wait(TimeSpan.FromSeconds(30)); // c's first verdict is being stored while the burst arrives
            }
            else if (n.Graph.GraphId == "a" && n.Final)
            {
                revisionMayFinish.Wait(TimeSpan.FromSeconds(30)); // a slow revision (an explanation, a graph file)
                Volatile.Write(ref revisionDone, true);
            }
        };
        var channel = Channel.CreateUnbounded<FinishedInvocation>();
        var run = Task.Run(() => pipeline.RunInvocationsAsync(channel.Reader, CancellationToken.None));
        channel.Writer.TryWrite(Invocation("a", provisional: true));
        await WaitForAsync(() => Handled().Count == 1);

        // a's final revises a verdict already given, and its handling is slow
        channel.Writer.TryWrite(Invocation("a", provisional: false));
        await WaitForAsync(() => Handled().Contains(("a", true)));
        foreach (var invocation in new[]
        {
            Invocation("c", provisional: true),
            Invocation("d", provisional: true),
            Invocation("d", provisional: false), // d's final came before d's provisional was handled: it gives d's first verdict
            Invocation("e", provisional: false), // no provisional: its final is its first verdict
        })
        {
            channel.Writer.TryWrite(invocation);
        }

        // the whole burst has been read and routed while c is being stored
        await WaitForAsync(() => channel.Reader.Count == 0 && Handled().Contains(("c", false)));
        burstQueued.Set();
        // the first verdicts are all stored while a's revision is still held up
        await WaitForAsync(() => Handled().Contains(("e", true)));
        Assert.False(Volatile.Read(ref revisionDone));
        Assert.Equal([("a", false), ("a", true), ("c", false), ("d", true), ("e", true)], Handled());
        Assert.Equal([true, false, true, true], Ids.Select(id => _store.Find($"span-{id}")!.Summary.Final));
        revisionMayFinish.Set();
        channel.Writer.Complete();
        await run.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(5, Handled().Count);
        Assert.Equal(5, pipeline.Classified);
        Assert.True(_store.Find("span-a")!.Summary.Final);

        List<(string Id, bool Final)> Handled()
        {
            lock (handled)
            {
                return [.. handled];
            }
        }
    }

    [Fact]
    public async Task A_revision_is_stored_only_after_the_provisional_verdict_it_revises()
    {
        var pipeline = new VerdictPipeline(_store, GraphClassifier.Open(null, null, NullLogger.Instance), new ComponentHealth(), null, NullLogger.Instance);
        var handled = new List<(string Id, bool Final, bool StoredFinal)>();
        using var provisionalMayFinish = new ManualResetEventSlim();
        pipeline.Stored += n =>
        {
            if (!n.Final)
            {
                provisionalMayFinish.Wait(TimeSpan.FromSeconds(30));
            }

            lock (handled)
            {
                handled.Add((n.Graph.GraphId, n.Final, _store.Find(n.Id)!.Summary.Final));
            }
        };
        var channel = Channel.CreateUnbounded<FinishedInvocation>();
        var run = Task.Run(() => pipeline.RunInvocationsAsync(channel.Reader, CancellationToken.None));
        channel.Writer.TryWrite(Invocation("x", provisional: true));
        await WaitForAsync(() => pipeline.Classified == 1); // x's provisional verdict is being handed out
        channel.Writer.TryWrite(Invocation("x", provisional: false));
        await WaitForAsync(() => channel.Reader.Count == 0);
        await Task.Delay(300);
        Assert.Equal(1, pipeline.Classified); // the revision waits: it is not in the store before the verdict it revises is out

        provisionalMayFinish.Set();
        channel.Writer.Complete();
        await run.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal([("x", false, false), ("x", true, true)], handled);
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
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "the pipeline did not get there within 20 s");
            await Task.Delay(20);
        }
    }
}
