using FaaSMon.Core;
using static FaaSMon.Grapher.Tests.GraphAssert;

namespace FaaSMon.Grapher.Tests;

public sealed class AttributionTests
{
    [Fact]
    public void A_request_read_opens_a_window_and_the_status_line_written_back_closes_it()
    {
        var ev = new Events();
        var h = new Harness().Feed(
            ev.OpenRead("/home/app/node_modules/express/index.js"), // start-up: before any request
            ev.Request(20, "call-a"),
            ev.OpenWrite("/tmp/upload.png"),
            ev.Write(30, "/tmp/upload.png"),
            ev.Write(30, "/tmp/upload.png"),
            ev.Response(20));
        Assert.Empty(h.Finished); // still settling
        h.Settle(ev.Time);

        var graph = h.Graph("call-a");
        Assert.Equal(GraphScope.Invocation, graph.Scope);
        Assert.Equal("product-photos-receive", graph.Function);
        Assert.Equal("response", Self(graph).Attributes!["closed"]);
        var file = Node(graph, NodeKind.File, "/tmp/upload.png");
        var write = Assert.Single(graph.Edges, e => e.Kind == EdgeKind.Write && e.Target == file.Id);
        Assert.Equal(2, write.Count); // identical edges collapse with a count
        Assert.True(write.LastTimeNs > write.FirstTimeNs);
        Assert.DoesNotContain(graph.Nodes, n => n.Label.Contains("express", StringComparison.Ordinal));
        Assert.Equal(1, h.Counters.Idle);
        Assert.False(graph.Ambiguous);
    }

    [Fact]
    public void A_file_written_by_one_invocation_and_executed_by_a_later_one_is_inherited()
    {
        var ev = new Events();
        const int Shell = 5001;
        var h = new Harness().Feed(
            ev.Request(20, "stage"),
            ev.OpenWrite("/tmp/.part"),
            ev.Write(30, "/tmp/.part"),
            ev.Rename("/tmp/.part", "/tmp/evil.sh"),
            ev.Response(20));
        h.Settle(ev.Time);
        ev.Wait(TimeSpan.FromSeconds(5));
        h.Feed(
            ev.Request(21, "trigger", clientPort: 50001),
            ev.Fork(Shell),
            ev.Exec(Shell, "/bin/sh", "sh", "-c", "chmod +x evil.sh; ./evil.sh"),
            ev.Chmod("/tmp/evil.sh"), // by the main process here: a chmod makes no writer
            ev.Next("execve", pid: Shell, path: "/tmp/evil.sh", argv: ["./evil.sh"]),
            ev.Response(21, clientPort: 50001),
            ev.Exit(Shell));
        h.Settle(ev.Time);
        h.Feed(ev.Request(22, "benign", clientPort: 50002), ev.OpenRead("/etc/hosts"), ev.Response(22, clientPort: 50002));
        h.Settle(ev.Time);

        var stage = h.Graph("stage");
        Assert.True(HasEdge(stage, EdgeKind.Rename, n => n.Kind == NodeKind.Process, n => n.Label == "/tmp/evil.sh"));
        Assert.DoesNotContain(stage.Edges, e => e.Kind == EdgeKind.Inherits);

        var trigger = h.Graph("trigger");
        var evil = Node(trigger, NodeKind.File, "/tmp/evil.sh");
        var inherits = Assert.Single(trigger.Edges, e => e.Kind == EdgeKind.Inherits && e.Target == evil.Id && e.Syscall == "execve");
        var writer = trigger.Nodes[inherits.Source];
        Assert.Equal("stage", writer.Attributes!["callId"]);
        Assert.Equal(stage.GraphId, writer.Attributes["graphId"]);
        Assert.True(HasEdge(trigger, EdgeKind.Execve, n => n.Attributes?.GetValueOrDefault("pid") == Shell.ToString(System.Globalization.CultureInfo.InvariantCulture), n => n.Id == evil.Id), Describe(trigger));
        Assert.True(HasEdge(trigger, EdgeKind.Fork, n => n.Attributes?.GetValueOrDefault("role") == "function", n => n.Attributes?.GetValueOrDefault("pid") == Shell.ToString(System.Globalization.CultureInfo.InvariantCulture)), Describe(trigger));

        Assert.DoesNotContain(h.Graph("benign").Edges, e => e.Kind == EdgeKind.Inherits);
    }

    [Theory]
    [InlineData("#!/bin/sh\necho", "script")]
    [InlineData("\u007fELF\u0002\u0001\u0001", "elf")]
    [InlineData("\u0089PNG\r\n\u001a\n", "image")]
    [InlineData("\u00ff\u00d8\u00ff\u00e0", "image")]
    [InlineData("{\"a\":1}", "text")]
    [InlineData("\u0000\u0001\u0002", "data")]
    public void A_download_says_what_kind_of_file_it_wrote_under_its_final_name_and_never_the_bytes(string first, string kind)
    {
        var ev = new Events();
        var bytes = System.Text.Encoding.Latin1.GetBytes(first);
        var h = new Harness().Feed(
            ev.Request(20, "download"),
            ev.OpenWrite("/tmp/.part"),
            ev.Next("write", fd: new FileDescriptorInfo(30, "/tmp/.part"), data: bytes, ret: 4096),
            ev.Next("write", fd: new FileDescriptorInfo(30, "/tmp/.part"), data: "#!later"u8.ToArray(), ret: 4096),
            ev.Rename("/tmp/.part", "/tmp/photo"),
            ev.OpenRead("/etc/hosts"),
            ev.Response(20));
        h.Settle(ev.Time);

        var graph = h.Graph("download");
        Assert.Equal(kind, Node(graph, NodeKind.File, "/tmp/.part").Attributes!["content"]); // the first write decides
        Assert.Equal(kind, Node(graph, NodeKind.File, "/tmp/photo").Attributes!["content"]);
        Assert.False(Node(graph, NodeKind.File, "/etc/hosts").Attributes!.ContainsKey("content"));
        Assert.DoesNotContain(graph.Nodes, n => n.Attributes?.Values.Any(v => v.Contains(first, StringComparison.Ordinal)) == true);
    }

    [Fact]
    public void A_later_invocation_that_rewrites_a_file_before_reading_it_inherits_nothing()
    {
        var ev = new Events();
        var h = new Harness().Feed(ev.Request(20, "first"), ev.OpenWrite("/tmp/cache.json"), ev.Response(20));
        h.Settle(ev.Time);
        h.Feed(ev.Request(20, "second"), ev.OpenWrite("/tmp/cache.json"), ev.OpenRead("/tmp/cache.json"), ev.Response(20));
        h.Settle(ev.Time);
        h.Feed(ev.Request(20, "third"), ev.OpenRead("/tmp/cache.json"), ev.Response(20));
        h.Settle(ev.Time);

        Assert.DoesNotContain(h.Graph("second").Edges, e => e.Kind == EdgeKind.Inherits);
        var third = h.Graph("third");
        var inherits = Assert.Single(third.Edges, e => e.Kind == EdgeKind.Inherits);
        Assert.Equal("second", third.Nodes[inherits.Source].Attributes!["callId"]); // the last writer, not the first
    }

    [Fact]
    public void Children_started_inside_an_invocation_belong_to_it_after_the_response_until_they_exit()
    {
        var ev = new Events();
        const int Child = 6001;
        var h = new Harness().Feed(
            ev.Request(20, "spawner"),
            ev.Fork(Child),
            ev.Response(20),
            ev.Exec(Child, "/bin/sh", "sh"),
            ev.Next("connect", pid: Child, fd: new FileDescriptorInfo(3, "TCP", "127.0.0.1:41000", "127.0.0.1:4444"), ret: 0));
        h.Attributor.Advance(ev.Time + TimeSpan.FromMilliseconds(200));
        Assert.Empty(h.Finished); // its child still runs: past the settle delay, within the grace
        h.Feed(ev.Exit(Child));
        h.Attributor.Advance(ev.Time + TimeSpan.FromMilliseconds(200));

        var graph = h.Graph("spawner");
        Assert.True(HasEdge(graph, EdgeKind.Connect, n => n.Label == "sh", n => n.Label == "127.0.0.1:4444"));
        Assert.True(HasEdge(graph, EdgeKind.Fork, n => n.Attributes?.GetValueOrDefault("role") == "function", n => n.Label == "sh"));
    }

    [Fact]
    public void A_child_known_only_by_its_container_pid_is_waited_for_after_the_response()
    {
        var ev = new Events();
        const int Child = 6101;
        var h = new Harness(new GrapherOptions { SettleDelay = TimeSpan.FromMilliseconds(50), RecordWait = TimeSpan.Zero, ChildGrace = TimeSpan.FromSeconds(5) });
        // clone returns 13, the child's pid in the container's PID namespace; its own events carry its host pid
        h.Feed(ev.Request(20, "bg"), ev.Next("clone", flags: "CLONE_CHILD_CLEARTID|SIGCHLD", ret: 13, target: 13), ev.Response(20));
        h.Attributor.Advance(ev.Time + TimeSpan.FromSeconds(1)); // past the settle delay: the child has not shown up yet
        Assert.Empty(h.Finished);
        h.Feed(
            ev.Exec(Child, "/usr/bin/node", "node", "-e", "…"),
            ev.Next("connect", pid: Child, fd: new FileDescriptorInfo(3, "TCP", "127.0.0.1:41000", "127.0.0.1:4444"), ret: -1, errno: "EINPROGRESS"),
            ev.Exit(Child));
        h.Settle(ev.Time);

        Assert.True(HasEdge(h.Graph("bg"), EdgeKind.Connect, n => n.Label == "node", n => n.Label == "127.0.0.1:4444"), Describe(h.Graph("bg")));
    }

    [Fact]
    public void A_process_of_the_instance_whose_parent_is_unknown_descends_from_the_function_process()
    {
        var ev = new Events();
        var h = new Harness().Feed(
            ev.Request(20, "orphan"),
            // strace's guess of the parent named a pid already gone: the container holds nothing but the function's descendants
            ev.Next("connect", pid: 6201, fd: new FileDescriptorInfo(3, "TCP", "127.0.0.1:41000", "127.0.0.1:4444"), ret: 0) with { Ppid = 99999 },
            ev.Exit(6201),
            ev.Response(20));
        h.Settle(ev.Time);

        Assert.True(HasEdge(h.Graph("orphan"), EdgeKind.Connect, n => n.Attributes?.GetValueOrDefault("pid") == "6201", n => n.Label == "127.0.0.1:4444"), Describe(h.Graph("orphan")));
        Assert.True(HasEdge(h.Graph("orphan"), EdgeKind.Fork, n => n.Attributes?.GetValueOrDefault("role") == "function", n => n.Attributes?.GetValueOrDefault("pid") == "6201"));
    }

    [Fact]
    public void Threads_are_not_processes()
    {
        var ev = new Events();
        var h = new Harness().Feed(ev.Request(20, "t"), ev.Thread(4243), ev.Read(31, "/etc/hosts", tid: 4243), ev.Response(20));
        h.Settle(ev.Time);
        var graph = h.Graph("t");
        Assert.Single(graph.Nodes, n => n.Kind == NodeKind.Process);
        Assert.DoesNotContain(graph.Edges, e => e.Kind == EdgeKind.Fork);
    }

    [Fact]
    public void Overlapping_requests_in_one_process_are_told_apart_by_their_descriptors_and_flagged_where_time_decides()
    {
        var ev = new Events();
        var h = new Harness().Feed(
            ev.Request(20, "a", clientPort: 50000),
            ev.OpenWrite("/tmp/a.png", fd: 40),
            ev.Request(21, "b", clientPort: 50001),
            ev.Write(40, "/tmp/a.png"), // a's descriptor while b is open: still a's
            ev.Send(50, "127.0.0.1:5432", data: "Q"u8.ToArray()), // a pooled database connection: time decides
            ev.Response(20, clientPort: 50000),
            ev.OpenWrite("/tmp/b.png", fd: 41),
            ev.Response(21, clientPort: 50001));
        h.Settle(ev.Time);

        var a = h.Graph("a");
        var b = h.Graph("b");
        Assert.True(HasEdge(a, EdgeKind.Write, _ => true, n => n.Label == "/tmp/a.png"));
        Assert.DoesNotContain(b.Nodes, n => n.Label == "/tmp/a.png");
        Assert.Contains(b.Nodes, n => n.Label == "/tmp/b.png");
        Assert.True(a.Ambiguous && b.Ambiguous);
        Assert.True(h.Counters.Ambiguous >= 1);
    }

    [Fact]
    public void An_outgoing_call_carrying_a_call_id_settles_which_overlapping_invocation_made_it()
    {
        var ev = new Events(function: "product-purchase", instance: "product-purchase-1");
        var call = "POST /function/product-purchase-authenticate HTTP/1.1\r\nX-Call-Id: first\r\n\r\n"u8.ToArray();
        var h = new Harness().Feed(
            ev.Request(20, "first", clientPort: 50000),
            ev.Request(21, "second", clientPort: 50001),
            ev.Connect(60, "127.0.0.1:8080"),
            ev.Send(60, "127.0.0.1:8080", data: call),
            ev.Response(20, clientPort: 50000),
            ev.Response(21, clientPort: 50001));
        h.Settle(ev.Time);

        Assert.True(HasEdge(h.Graph("first"), EdgeKind.Send, _ => true, n => n.Label == "127.0.0.1:8080"));
        Assert.False(HasEdge(h.Graph("second"), EdgeKind.Send, _ => true, n => n.Label == "127.0.0.1:8080"));
    }

    [Fact]
    public void Among_overlapping_requests_a_call_naming_what_only_one_request_carried_goes_to_that_one()
    {
        var ev = new Events();
        const int Shell = 8001;
        var h = new Harness();
        // the bodies come in reads of their own after the heads, as the gateway forwards them chunked
        h.Feed(
            ev.Request(20, "a", clientPort: 50000),
            ev.Next("read", fd: Events.Socket(20, 50000), data: """{"url":"http://photos/photos/alpha1234.png"}"""u8.ToArray(), ret: 40),
            ev.Request(21, "b", clientPort: 50001),
            ev.Next("read", fd: Events.Socket(21, 50001), data: """{"url":"http://photos/photos/bravo5678.png"}"""u8.ToArray(), ret: 40),
            ev.Request(22, "c", clientPort: 50002),
            ev.Rename("/tmp/.receive-1.part", "/tmp/alpha1234.png"), // a thread-pool rename: time alone would say c
            ev.Fork(Shell),
            ev.Next("write", pid: Shell, fd: new FileDescriptorInfo(1, "pipe:[77]"), ret: 1), // held until the execve decides
            ev.Exec(Shell, "/bin/sh", "/bin/sh", "-c", "sha256sum \"bravo5678.png\""),
            ev.Next("openat", pid: Shell, path: "/tmp/bravo5678.png", flags: "O_RDONLY", fd: new FileDescriptorInfo(3, "/tmp/bravo5678.png"), ret: 3),
            ev.Exit(Shell),
            ev.Response(20, clientPort: 50000),
            ev.Response(21, clientPort: 50001),
            ev.Response(22, clientPort: 50002));
        h.Settle(ev.Time);

        Assert.Contains(h.Graph("a").Nodes, n => n.Label == "/tmp/alpha1234.png");
        var b = h.Graph("b");
        Assert.True(HasEdge(b, EdgeKind.Open, n => n.Label == "sh", n => n.Label == "/tmp/bravo5678.png"), Describe(b));
        Assert.True(HasEdge(b, EdgeKind.Write, n => n.Label == "sh", n => n.Label == "pipe"), Describe(b)); // the held event went with it
        var c = h.Graph("c");
        Assert.DoesNotContain(c.Nodes, n => n.Label.Contains("alpha", StringComparison.Ordinal) || n.Label.Contains("bravo", StringComparison.Ordinal) || n.Label == "sh");
    }

    [Fact]
    public void A_child_held_for_an_execve_that_never_comes_is_in_the_graph_when_it_is_built()
    {
        var ev = new Events(function: "product-photos-message", instance: "product-photos-message-1");
        const int Shell = 9001;
        var h = new Harness(new GrapherOptions { SettleDelay = TimeSpan.FromMilliseconds(10), RecordWait = TimeSpan.Zero, ChildGrace = TimeSpan.FromMilliseconds(100) });
        h.Feed(
            ev.Request(20, "a", clientPort: 50000),
            ev.Request(21, "b", clientPort: 50001),
            ev.Fork(Shell), // among two open requests: the child waits for an execve to say whose it is
            ev.Next("connect", pid: Shell, fd: new FileDescriptorInfo(3, "TCP", "127.0.0.1:41000", "127.0.0.1:4444"), ret: 0),
            ev.Response(20, clientPort: 50000),
            ev.Response(21, clientPort: 50001));
        h.Settle(ev.Time); // the shell lives on and never execs

        var connects = h.Finished.Where(f => HasEdge(f.Graph, EdgeKind.Connect, n => n.Attributes?.GetValueOrDefault("pid") == "9001", n => n.Label == "127.0.0.1:4444")).ToList();
        var owner = Assert.Single(connects);
        Assert.True(owner.Graph.Ambiguous);
    }

    [Fact]
    public void Work_a_handler_did_not_await_is_its_tail_until_the_settle_delay_ends()
    {
        var ev = new Events(function: "product-catalog-api", instance: "product-catalog-api-1");
        var h = new Harness(new GrapherOptions { SettleDelay = TimeSpan.FromMilliseconds(500), RecordWait = TimeSpan.Zero });
        h.Feed(ev.Request(20, "injected"), ev.Response(20));
        ev.Wait(TimeSpan.FromMilliseconds(200)); // a setTimeout(…, 200) in the request
        h.Feed(ev.OpenWrite("/tmp/catalog-cache.json"));
        ev.Wait(TimeSpan.FromSeconds(1));
        h.Feed(ev.OpenWrite("/tmp/unrelated.json")); // long after: nobody's
        h.Settle(ev.Time);

        var graph = h.Graph("injected");
        Assert.Contains(graph.Nodes, n => n.Label == "/tmp/catalog-cache.json");
        Assert.DoesNotContain(graph.Nodes, n => n.Label == "/tmp/unrelated.json");
    }

    [Fact]
    public void With_provisional_graphs_a_graph_comes_once_response_and_record_are_seen_and_the_final_one_after_the_settle_delay()
    {
        var ev = new Events(function: "product-catalog-api", instance: "product-catalog-api-1");
        var h = new Harness(new GrapherOptions { SettleDelay = TimeSpan.FromMilliseconds(500), RecordWait = TimeSpan.FromSeconds(2), ProvisionalGraphs = true });
        var start = ev.Time;
        h.Feed(ev.Request(20, "call-p"), ev.OpenWrite("/tmp/before.json"), ev.Response(20));
        h.Attributor.Advance(ev.Time);
        Assert.Empty(h.Finished); // no record yet: the join with trace context comes first
        h.Attributor.Add(Record("call-p", "product-catalog-api", "/function/product-catalog-api/products", null, start, ev.Time));
        var provisional = Assert.Single(h.Finished); // at once, not at the next tick
        Assert.True(provisional.Provisional);
        Assert.NotNull(provisional.Record);
        Assert.Contains(provisional.Graph.Nodes, n => n.Label == "/tmp/before.json");

        ev.Wait(TimeSpan.FromMilliseconds(100)); // the tail: after the provisional graph, before the settle delay ends
        h.Feed(ev.OpenWrite("/tmp/tail.json"));
        h.Attributor.Advance(ev.Time);
        Assert.Single(h.Finished); // one provisional graph per invocation, however often the clock ticks
        h.Settle(ev.Time);

        Assert.Equal(2, h.Finished.Count);
        var final = h.Finished[1];
        Assert.False(final.Provisional);
        Assert.Equal(provisional.Graph.GraphId, final.Graph.GraphId);
        Assert.Contains(final.Graph.Nodes, n => n.Label == "/tmp/tail.json");
        Assert.DoesNotContain(provisional.Graph.Nodes, n => n.Label == "/tmp/tail.json");
        Assert.Equal(1, h.Counters.Graphs); // the provisional graph is not counted as a graph built
    }

    [Fact]
    public void Events_of_unknown_processes_are_counted_and_left_out()
    {
        var ev = new Events();
        var h = new Harness().Feed(
            ev.Request(20, "x"),
            ev.Next("openat", pid: 999, path: "/etc/shadow", flags: "O_RDONLY", functionOverride: null) with { Function = null, Instance = null },
            ev.Response(20));
        h.Settle(ev.Time);
        Assert.Equal(1, h.Counters.UnknownProcess);
        Assert.DoesNotContain(h.Graph("x").Nodes, n => n.Label == "/etc/shadow");
    }

    [Fact]
    public void Out_of_order_timestamps_do_not_break_windows_or_edge_times()
    {
        var ev = new Events();
        var request = ev.Request(20, "o");
        var early = ev.OpenWrite("/tmp/o.txt");
        var write = ev.Write(30, "/tmp/o.txt");
        var late = ev.Write(30, "/tmp/o.txt");
        var response = ev.Response(20);
        var h = new Harness().Feed(request, early, late, write, response); // two writes swapped
        h.Feed(early with { Timestamp = request.Timestamp - TimeSpan.FromSeconds(30) }); // from before the window: nobody's
        h.Settle(ev.Time);

        var edge = Assert.Single(h.Graph("o").Edges, e => e.Kind == EdgeKind.Write);
        Assert.Equal(2, edge.Count);
        Assert.True(edge.FirstTimeNs < edge.LastTimeNs);
        Assert.True(h.Counters.Idle >= 1);
    }

    [Fact]
    public void An_invocation_with_a_million_events_is_capped_flagged_and_bounded()
    {
        var ev = new Events();
        var h = new Harness(new GrapherOptions { MaxNodesPerGraph = 1_000, MaxEdgesPerGraph = 4_000, SettleDelay = TimeSpan.Zero, RecordWait = TimeSpan.Zero });
        h.Feed(ev.Request(20, "flood"));
        GC.Collect();
        var before = GC.GetTotalMemory(forceFullCollection: true);
        for (var i = 0; i < 1_000_000; i++)
        {
            // distinct files while under the cap, then the same ones again: nodes, edges and repeats all hit
            h.Attributor.Add(ev.OpenRead($"/tmp/f{i % 20_000}", fd: 100));
        }

        var during = GC.GetTotalMemory(forceFullCollection: true);
        h.Feed(ev.Response(20)).Settle(ev.Time);

        var graph = h.Graph("flood");
        Assert.True(graph.Truncated);
        Assert.True(graph.Nodes.Count <= 1_000);
        Assert.True(graph.Edges.Count <= 4_000);
        Assert.True(long.Parse(Self(graph).Attributes!["leftOut"], System.Globalization.CultureInfo.InvariantCulture) > 0);
        Assert.Equal(1, h.Counters.Truncated);
        Assert.True(during - before < 64L * 1024 * 1024, $"an open invocation held {(during - before) / 1024 / 1024} MiB");
    }

    [Fact]
    public void Events_after_a_flush_are_counted_late_not_attributed()
    {
        var ev = new Events();
        const int Child = 7001;
        var h = new Harness(new GrapherOptions { SettleDelay = TimeSpan.FromMilliseconds(10), RecordWait = TimeSpan.Zero, ChildGrace = TimeSpan.FromMilliseconds(20) });
        h.Feed(ev.Request(20, "f"), ev.Fork(Child), ev.Exec(Child, "/bin/sleep", "sleep", "60"), ev.Response(20));
        h.Settle(ev.Time);
        Assert.Single(h.Finished);
        var attributed = h.Counters.Attributed;
        h.Feed(ev.Next("openat", pid: Child, path: "/tmp/after", flags: "O_RDONLY"));
        Assert.Equal(1, h.Counters.Late);
        Assert.Equal(attributed, h.Counters.Attributed);
        Assert.Single(h.Finished);
    }

    [Fact]
    public void A_window_that_never_closes_is_flushed_by_timeout()
    {
        var ev = new Events();
        var h = new Harness(new GrapherOptions { WindowTimeout = TimeSpan.FromSeconds(5) });
        h.Feed(ev.Request(20, "hang"), ev.OpenRead("/etc/hosts"));
        h.Attributor.Advance(ev.Time + TimeSpan.FromSeconds(1));
        Assert.Empty(h.Finished);
        h.Attributor.Advance(ev.Time + TimeSpan.FromSeconds(6));
        var graph = h.Graph("hang");
        Assert.Equal("timeout", Self(graph).Attributes!["closed"]);
        Assert.Equal(1, h.Counters.TimedOut);
    }

    [Fact]
    public void The_proxy_record_joins_trace_context_and_a_cut_call_id_is_found_by_path_and_time()
    {
        var ev = new Events(function: "product-catalog-api", instance: "product-catalog-api-1");
        var h = new Harness();
        var record = Record("call-1", "product-catalog-api", "/function/product-catalog-api/products", "?category=cameras", ev.Time, ev.Time + TimeSpan.FromMilliseconds(50));
        var other = Record("call-2", "product-catalog-api", "/function/product-catalog-api/categories", null, ev.Time, ev.Time + TimeSpan.FromMilliseconds(50));
        // a shorter request at the same time whose whole target is a prefix of the cut one: not this invocation's
        var shorter = Record("call-3", "product-catalog-api", "/function/product-catalog-api/products", "?category=cam", ev.Time, ev.Time + TimeSpan.FromMilliseconds(50));
        h.Attributor.Add(other);
        h.Attributor.Add(shorter);
        h.Attributor.Add(record);
        // the head as a tracer keeping few bytes sees it: the request line, no call id
        var head = System.Text.Encoding.ASCII.GetBytes("GET /products?category=cameras HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nX-Call-I");
        h.Feed(ev.Next("read", fd: Events.Socket(20, 50000), data: head, ret: head.Length), ev.OpenRead("/tmp/catalog-cache.json"), ev.Response(20));
        h.Settle(ev.Time);

        var finished = Assert.Single(h.Finished);
        Assert.Equal("call-1", finished.Graph.CallId);
        Assert.Equal(record.TraceId, finished.TraceId);
        Assert.Equal(record.SpanId, finished.SpanId);
        Assert.Equal("200", Self(finished.Graph).Attributes!["status"]);
        Assert.Equal(1, h.Counters.RecordsMatched);
    }

    [Fact]
    public void A_call_made_without_trace_context_is_linked_to_the_invocation_that_made_it()
    {
        var caller = new Events(pid: 100, function: "product-purchase-get-price", instance: "get-price-1");
        var callee = new Events(pid: 200, function: "product-purchase-publish", instance: "publish-1");
        var h = new Harness();
        h.Feed(caller.Request(20, "injected"), caller.Connect(60, "127.0.0.1:8080", localPort: 45555), caller.Send(60, "127.0.0.1:8080", localPort: 45555));
        h.Feed(callee.Request(20, "fresh-call-id"), callee.Response(20));
        h.Attributor.Add(Record("fresh-call-id", "product-purchase-publish", "/function/product-purchase-publish", null, caller.Time, caller.Time + TimeSpan.FromMilliseconds(10), client: "127.0.0.1:45555"));
        h.Feed(caller.Response(20));
        h.Settle(callee.Time + TimeSpan.FromSeconds(1));

        var publish = Self(h.Graph("fresh-call-id"));
        Assert.Equal("product-purchase-get-price", publish.Attributes!["callerFunction"]);
        Assert.Equal("injected", publish.Attributes["callerCallId"]);
        Assert.Equal("true", publish.Attributes["untracedCall"]);
    }

    [Fact]
    public void A_timer_of_an_answered_request_goes_to_the_request_that_named_its_file_not_to_the_last_one_answered()
    {
        // big2 inv-nocallid-product-catalog-api-1004: the sort's setTimeout(…, 200) wrote the cache while a later call
        // (answered after it) was also in its tail; the latest-answered rule gave the write to that call
        var ev = new Events(function: "product-catalog-api", instance: "product-catalog-api-1");
        var sort = Uri.EscapeDataString("((g,k)=>(setTimeout(()=>{const fs=require(\"fs\"),f=\"/tmp/catalog-cache.json\";fs.writeFileSync(f,\"x\")},200)))(globalThis,\"k\")");
        var h = new Harness(new GrapherOptions { SettleDelay = TimeSpan.FromMilliseconds(500), RecordWait = TimeSpan.Zero });
        h.Feed(ev.Request(20, "injected", target: "/products?category=cameras&sort=" + sort, method: "GET"), ev.Response(20));
        h.Feed(ev.Request(21, "later", target: "/products/p-cam-001", clientPort: 50001, method: "GET"), ev.OpenRead("/tmp/catalog-cache.json"), ev.Read(31, "/tmp/catalog-cache.json"), ev.Response(21, clientPort: 50001));
        ev.Wait(TimeSpan.FromMilliseconds(200));
        h.Feed(ev.OpenWrite("/tmp/catalog-cache.json", fd: 33)); // nobody open: two tails
        h.Feed(ev.Request(22, "next", target: "/categories", clientPort: 50002, method: "GET"));
        h.Feed(ev.Write(33, "/tmp/catalog-cache.json")); // the descriptor the timer opened, while the next call is served
        h.Feed(ev.Response(22, clientPort: 50002));
        h.Settle(ev.Time);

        var injected = h.Graph("injected");
        Assert.True(HasEdge(injected, EdgeKind.Open, _ => true, n => n.Label == "/tmp/catalog-cache.json"), Describe(injected));
        Assert.True(HasEdge(injected, EdgeKind.Write, _ => true, n => n.Label == "/tmp/catalog-cache.json"), Describe(injected));
        var later = h.Graph("later");
        Assert.True(HasEdge(later, EdgeKind.Read, n => n.Label == "/tmp/catalog-cache.json", _ => true)); // its own read stays
        Assert.False(HasEdge(later, EdgeKind.Write, _ => true, n => n.Label == "/tmp/catalog-cache.json"), Describe(later));
        Assert.DoesNotContain(h.Graph("next").Nodes, n => n.Label == "/tmp/catalog-cache.json");
    }

    [Fact]
    public void Among_overlapping_requests_a_directory_only_one_request_named_goes_to_that_one()
    {
        // big2 product-catalog-api-3569 (benign GET /categories) held the credential theft's listing of the secret mount:
        // the theft's query named the directory, the listing came while /categories was the latest request
        var ev = new Events(function: "product-catalog-api", instance: "product-catalog-api-1");
        var sort = Uri.EscapeDataString("(()=>{const fs=require(\"fs\"),d=process.env.secret_mount_path||\"/var/openfaas/secrets\";fs.readdirSync(d)})()");
        var h = new Harness();
        h.Feed(
            ev.Request(20, "theft", target: "/products?category=cameras&sort=" + sort, method: "GET"),
            ev.Request(21, "categories", target: "/categories", clientPort: 50001, method: "GET"),
            ev.Next("openat", path: "/var/openfaas/secrets", flags: "O_RDONLY|O_DIRECTORY", fd: new FileDescriptorInfo(35, "/var/openfaas/secrets"), ret: 35),
            ev.OpenRead("/var/openfaas/secrets/payment-api-key", fd: 36),
            ev.Response(20),
            ev.Response(21, clientPort: 50001));
        h.Settle(ev.Time);

        var theft = h.Graph("theft");
        Assert.Contains(theft.Nodes, n => n.Label == "/var/openfaas/secrets");
        Assert.Contains(theft.Nodes, n => n.Label == "/var/openfaas/secrets/payment-api-key");
        Assert.DoesNotContain(h.Graph("categories").Nodes, n => n.Label.Contains("secrets", StringComparison.Ordinal));
    }

    [Fact]
    public void A_request_open_while_an_earlier_one_is_in_its_tail_keeps_what_its_own_handler_names()
    {
        var ev = new Events(function: "product-catalog-api", instance: "product-catalog-api-1");
        var sort = Uri.EscapeDataString("(f=\"/tmp/catalog-cache.json\")");
        var h = new Harness(new GrapherOptions { SettleDelay = TimeSpan.FromMilliseconds(500), RecordWait = TimeSpan.Zero });
        h.Feed(ev.Request(20, "injected", target: "/products?sort=" + sort, method: "GET"), ev.Response(20));
        h.Feed(ev.Request(21, "benign", target: "/products/p-cam-001", clientPort: 50001, method: "GET"), ev.OpenRead("/tmp/catalog-cache.json"), ev.Response(21, clientPort: 50001));
        h.Settle(ev.Time);

        Assert.Contains(h.Graph("benign").Nodes, n => n.Label == "/tmp/catalog-cache.json");
        Assert.DoesNotContain(h.Graph("injected").Nodes, n => n.Label == "/tmp/catalog-cache.json");
    }

    [Fact]
    public void A_download_renamed_and_hashed_while_another_request_is_served_stays_with_the_request_that_wrote_it()
    {
        // big2 product-photos-receive-253 (benign) held the container-reuse stage 250's rename to evil.sh and its
        // sh -c sha256sum "evil.sh": both came while 253 was the latest open request
        var ev = new Events();
        const int Shell = 7001;
        var h = new Harness();
        h.Feed(
            ev.Request(20, "stage", clientPort: 50000),
            ev.OpenWrite("/tmp/.receive-2-fedea84d1195.part", fd: 40),
            ev.Write(40, "/tmp/.receive-2-fedea84d1195.part"),
            ev.Request(21, "benign", clientPort: 50001),
            ev.Rename("/tmp/.receive-2-fedea84d1195.part", "/tmp/evil.sh"),
            ev.Fork(Shell),
            ev.Exec(Shell, "/bin/sh", "/bin/sh", "-c", "sha256sum \"evil.sh\""),
            ev.Next("openat", pid: Shell, path: "/tmp/evil.sh", flags: "O_RDONLY", fd: new FileDescriptorInfo(3, "/tmp/evil.sh"), ret: 3),
            ev.Exit(Shell),
            ev.Response(20, clientPort: 50000),
            ev.Response(21, clientPort: 50001));
        h.Settle(ev.Time);

        var stage = h.Graph("stage");
        Assert.True(HasEdge(stage, EdgeKind.Rename, _ => true, n => n.Label == "/tmp/evil.sh"), Describe(stage));
        Assert.True(HasEdge(stage, EdgeKind.Open, n => n.Label == "sh", n => n.Label == "/tmp/evil.sh"), Describe(stage));
        var benign = h.Graph("benign");
        Assert.DoesNotContain(benign.Nodes, n => n.Label.Contains("evil", StringComparison.Ordinal) || n.Label == "sh");
    }

    [Fact]
    public void A_download_written_while_another_request_was_served_moves_to_the_request_that_renamed_it()
    {
        // c5: 11 benign product-photos-receive graphs held the container-reuse stage's .part with a script in it. The
        // download's open and writes ran on the thread pool while the benign request was the latest open; the rename to
        // evil.sh went to the stage, whose URL named it
        var ev = new Events();
        const string Part = "/tmp/.receive-2-9a1b2c3d4e5f.part";
        var h = new Harness();
        h.Feed(
            ev.Request(20, "stage", clientPort: 50000),
            ev.Next("read", fd: Events.Socket(20, 50000), data: """{"url":"http://127.0.0.1:41000/evil.sh"}"""u8.ToArray(), ret: 40),
            ev.Request(21, "benign", clientPort: 50001),
            ev.Next("read", fd: Events.Socket(21, 50001), data: """{"url":"http://photos/photos/p-tri-004-back.jpg"}"""u8.ToArray(), ret: 40),
            ev.OpenWrite(Part, fd: 40),
            ev.Next("write", fd: new FileDescriptorInfo(40, Part), data: "#!/bin/s"u8.ToArray(), ret: 120),
            ev.Next("write", fd: new FileDescriptorInfo(40, Part), data: "echo hi\n"u8.ToArray(), ret: 8),
            ev.Rename(Part, "/tmp/evil.sh"),
            ev.Response(20, clientPort: 50000),
            ev.Response(21, clientPort: 50001));
        h.Settle(ev.Time);

        var stage = h.Graph("stage");
        Assert.True(HasEdge(stage, EdgeKind.Open, n => n.Kind == NodeKind.Process, n => n.Label == Part), Describe(stage));
        var write = Assert.Single(stage.Edges, e => e.Kind == EdgeKind.Write && stage.Nodes[e.Target].Label == Part);
        Assert.Equal(2, write.Count); // both writes, with their count
        Assert.Equal("script", Node(stage, NodeKind.File, "/tmp/evil.sh").Attributes!["content"]);
        var benign = h.Graph("benign");
        Assert.DoesNotContain(benign.Nodes, n => n.Label.Contains(".part", StringComparison.Ordinal) || n.Label.Contains("evil", StringComparison.Ordinal));
        Assert.All(benign.Nodes.Select((n, i) => (n, i)), p => Assert.Equal(p.i, p.n.Id)); // ids stay dense after the move
        Assert.All(benign.Edges, e => Assert.True(e.Source < benign.Nodes.Count && e.Target < benign.Nodes.Count, Describe(benign)));
        Assert.Contains(benign.Nodes, n => n.Label == "p-tri-004-back.jpg" || n.Kind == NodeKind.Socket);
        Assert.Equal(1, h.Counters.MovedFiles);

        // the invocation that runs it later inherits it from the stage, not from the benign request
        ev.Wait(TimeSpan.FromSeconds(5));
        h.Feed(ev.Request(22, "trigger", clientPort: 50002), ev.Exec(ev.Pid, "/tmp/evil.sh"), ev.Response(22, clientPort: 50002));
        h.Settle(ev.Time);
        var trigger = h.Graph("trigger");
        var inherits = Assert.Single(trigger.Edges, e => e.Kind == EdgeKind.Inherits);
        Assert.Equal("stage", trigger.Nodes[inherits.Source].Attributes!["callId"]);
    }

    [Fact]
    public void A_call_sent_after_its_caller_answered_goes_to_the_caller_its_body_names_not_to_the_request_open_then()
    {
        // c6 lateral movement: the injected fetch to publish went out on undici's pooled gateway connection (no connect)
        // after the attack get-price had answered, as one writev [headers, body]; time gave it to the benign get-price
        // open then, so the attack graph lost its call and publish was marked as called by the benign one
        var caller = new Events(pid: 100, function: "product-purchase-get-price", instance: "get-price-1");
        var callee = new Events(pid: 200, function: "product-purchase-publish", instance: "publish-1");
        var h = new Harness();
        h.Feed(caller.Request(20, "earlier"), caller.Connect(60, "127.0.0.1:8080", localPort: 45555), caller.Response(20)); // the pool's connection
        caller.Wait(TimeSpan.FromSeconds(3));
        h.Settle(caller.Time);
        h.Feed(
            caller.Request(21, "attack", clientPort: 50001),
            caller.Next("read", fd: Events.Socket(21, 50001), data: """{"user":"mallory-4711","coupon":"x"}"""u8.ToArray(), ret: 36),
            caller.Response(21, clientPort: 50001),
            caller.Request(22, "benign", clientPort: 50002),
            caller.Next("read", fd: Events.Socket(22, 50002), data: """{"user":"alice-2024","product":"p-cam-001"}"""u8.ToArray(), ret: 43));
        var sent = caller.Time;
        h.Feed(caller.Next("writev", fd: new FileDescriptorInfo(60, "TCP", "127.0.0.1:45555", "127.0.0.1:8080"),
            data: "POST /function/product-purchase-publish HTTP/1.1\r\nhost: 127.0.0.1:8080\r\n\r\n{\"user\":\"mallory-4711\"}"u8.ToArray(), ret: 90));
        callee.Wait(sent - callee.Time);
        h.Feed(callee.Request(20, "publish"), callee.Response(20));
        h.Attributor.Add(Record("publish", "product-purchase-publish", "/function/product-purchase-publish", null, sent, sent + TimeSpan.FromMilliseconds(5), client: "127.0.0.1:45555"));
        h.Feed(
            caller.Next("read", fd: new FileDescriptorInfo(60, "TCP", "127.0.0.1:45555", "127.0.0.1:8080"), data: "HTTP/1.1 200 OK\r\n\r\n"u8.ToArray(), ret: 19),
            caller.Response(22, clientPort: 50002));
        h.Settle(caller.Time + TimeSpan.FromSeconds(2));

        var attack = h.Graph("attack");
        Assert.True(HasEdge(attack, EdgeKind.Send, n => n.Kind == NodeKind.Process, n => n.Label == "127.0.0.1:8080"), Describe(attack));
        Assert.True(HasEdge(attack, EdgeKind.Recv, n => n.Label == "127.0.0.1:8080", n => n.Kind == NodeKind.Process), Describe(attack)); // the reply too
        var benign = h.Graph("benign");
        Assert.False(HasEdge(benign, EdgeKind.Send, n => n.Kind == NodeKind.Process, n => n.Label == "127.0.0.1:8080"), Describe(benign));
        Assert.False(HasEdge(benign, EdgeKind.Recv, n => n.Label == "127.0.0.1:8080", n => n.Kind == NodeKind.Process), Describe(benign));
        Assert.Equal("attack", Self(h.Graph("publish")).Attributes!["callerCallId"]);
    }

    [Fact]
    public void A_call_on_a_connection_opened_while_another_request_was_served_goes_with_its_connect_to_the_caller_its_body_names()
    {
        // c7 get-price-4590 (lateral movement) and 4593 (benign), one instance: the injected fetch, made after the attack
        // had answered, opened a new connection while the benign request was served; time gave the benign one the
        // connect and so every write and reply on it, and publish was marked as called by the benign get-price
        var caller = new Events(pid: 100, function: "product-purchase-get-price", instance: "get-price-1");
        var callee = new Events(pid: 200, function: "product-purchase-publish", instance: "publish-1");
        var h = new Harness();
        h.Feed(
            caller.Request(21, "attack", clientPort: 50001),
            caller.Next("read", fd: Events.Socket(21, 50001), data: """{"user":"mallory-4711","coupon":"x"}"""u8.ToArray(), ret: 36),
            caller.Response(21, clientPort: 50001),
            caller.Request(22, "benign", clientPort: 50002),
            caller.Next("read", fd: Events.Socket(22, 50002), data: """{"user":"alice-2024","product":"p-cam-001"}"""u8.ToArray(), ret: 43),
            caller.Connect(61, "127.0.0.1:8080", localPort: 45556));
        var sent = caller.Time;
        var connection = new FileDescriptorInfo(61, "TCP", "127.0.0.1:45556", "127.0.0.1:8080");
        h.Feed(caller.Next("writev", fd: connection,
            data: "POST /function/product-purchase-publish HTTP/1.1\r\nhost: 127.0.0.1:8080\r\n\r\n{\"user\":\"mallory-4711\"}"u8.ToArray(), ret: 90));
        callee.Wait(sent - callee.Time);
        h.Feed(callee.Request(20, "publish"), callee.Response(20));
        h.Attributor.Add(Record("publish", "product-purchase-publish", "/function/product-purchase-publish", null, sent, sent + TimeSpan.FromMilliseconds(5), client: "127.0.0.1:45556"));
        h.Feed(
            caller.Next("read", fd: connection, data: "HTTP/1.1 200 OK\r\n\r\n"u8.ToArray(), ret: 19),
            caller.Response(22, clientPort: 50002));
        h.Settle(caller.Time + TimeSpan.FromSeconds(2));

        var attack = h.Graph("attack");
        foreach (var kind in new[] { EdgeKind.Connect, EdgeKind.Send })
        {
            Assert.True(HasEdge(attack, kind, n => n.Kind == NodeKind.Process, n => n.Label == "127.0.0.1:8080"), $"{kind}: {Describe(attack)}");
        }

        Assert.True(HasEdge(attack, EdgeKind.Recv, n => n.Label == "127.0.0.1:8080", n => n.Kind == NodeKind.Process), Describe(attack));
        var benign = h.Graph("benign");
        Assert.DoesNotContain(benign.Nodes, n => n.Label == "127.0.0.1:8080");
        Assert.Equal("attack", Self(h.Graph("publish")).Attributes!["callerCallId"]);
    }

    [Fact]
    public void A_short_file_name_only_one_overlapping_request_named_goes_to_that_one()
    {
        // big3 product-photos-receive-2020 (benign): the stage's handler opened its download /tmp/evil.sh while the benign
        // request was the latest open; the stage's URL named evil.sh, a name too short for a word before
        var ev = new Events();
        var h = new Harness();
        h.Feed(
            ev.Request(20, "stage", clientPort: 50000),
            ev.Next("read", fd: Events.Socket(20, 50000), data: """{"url":"http://127.0.0.1:41000/evil.sh"}"""u8.ToArray(), ret: 40),
            ev.Request(21, "benign", clientPort: 50001),
            ev.Next("read", fd: Events.Socket(21, 50001), data: """{"url":"http://photos/photos/p-tri-004-back.jpg"}"""u8.ToArray(), ret: 40),
            ev.OpenRead("/tmp/evil.sh", fd: 44),
            ev.OpenRead("/tmp/p-tri-004-back.jpg", fd: 45),
            ev.Response(20, clientPort: 50000),
            ev.Response(21, clientPort: 50001));
        h.Settle(ev.Time);

        Assert.Contains(h.Graph("stage").Nodes, n => n.Label == "/tmp/evil.sh");
        var benign = h.Graph("benign");
        Assert.DoesNotContain(benign.Nodes, n => n.Label.Contains("evil", StringComparison.Ordinal));
        Assert.Contains(benign.Nodes, n => n.Label == "/tmp/p-tri-004-back.jpg");
    }

    [Fact]
    public void A_client_port_a_function_used_long_ago_names_no_caller()
    {
        // big2 product-photos-register-1710: an entry call from the workload driver on 127.0.0.1:47830, a port a receive
        // invocation had connected from 50 s before, was marked as receive's untraced call
        var caller = new Events(pid: 100, function: "product-photos-receive", instance: "receive-1");
        var callee = new Events(pid: 200, function: "product-photos-register", instance: "register-1");
        var h = new Harness();
        h.Feed(caller.Request(20, "receive"), caller.Connect(60, "127.0.0.1:8080", localPort: 47830), caller.Send(60, "127.0.0.1:8080", localPort: 47830), caller.Response(20));
        h.Settle(caller.Time);
        callee.Wait(TimeSpan.FromSeconds(50));
        var start = callee.Time;
        h.Feed(callee.Request(20, "entry"), callee.Response(20));
        h.Attributor.Add(Record("entry", "product-photos-register", "/function/product-photos-register", null, start, callee.Time, parentSpan: "1edfd84864694e9e", client: "127.0.0.1:47830"));
        h.Settle(callee.Time);

        var register = Self(h.Graph("entry"));
        Assert.False(register.Attributes!.ContainsKey("callerFunction"));
        Assert.False(register.Attributes.ContainsKey("untracedCall"));
    }

    [Fact]
    public void The_caller_of_a_record_that_arrives_before_the_send_is_traced_is_the_one_that_sent_it()
    {
        // big2 product-purchase-get-price-2726: the proxy's record came before strace's writev on the kept-alive
        // connection, which an earlier purchase (another trace) had used: that one was named, untraced
        var caller = new Events(pid: 100, function: "product-purchase", instance: "purchase-1");
        var callee = new Events(pid: 200, function: "product-purchase-get-price", instance: "get-price-1");
        var h = new Harness();
        var traceA = TraceIds.NewTraceId();
        var traceB = TraceIds.NewTraceId();
        var call = System.Text.Encoding.ASCII.GetBytes("POST /function/product-purchase-get-price HTTP/1.1\r\nX-Call-Id: b\r\n\r\n");
        h.Feed(caller.Request(20, "a", traceparent: $"00-{traceA}-1111111111111111-01"), caller.Connect(60, "127.0.0.1:8080", localPort: 44908),
            caller.Send(60, "127.0.0.1:8080", localPort: 44908, data: System.Text.Encoding.ASCII.GetBytes("POST /function/product-purchase-authenticate HTTP/1.1\r\nX-Call-Id: a\r\n\r\n")),
            caller.Response(20));
        caller.Wait(TimeSpan.FromMilliseconds(500));
        callee.Wait(TimeSpan.FromMilliseconds(503));
        h.Feed(caller.Request(21, "b", traceparent: $"00-{traceB}-2222222222222222-01", clientPort: 50001));
        var start = caller.Time + TimeSpan.FromMilliseconds(1);
        h.Feed(callee.Request(20, "b", traceparent: $"00-{traceB}-3333333333333333-01"), callee.Response(20));
        h.Attributor.Add(Record("b", "product-purchase-get-price", "/function/product-purchase-get-price/", null, start, start + TimeSpan.FromMilliseconds(5),
            parentSpan: "3333333333333333", client: "127.0.0.1:44908", traceId: traceB));
        h.Feed(caller.Send(60, "127.0.0.1:8080", localPort: 44908, data: call), caller.Response(21, clientPort: 50001)); // strace lagging behind
        h.Settle(caller.Time + TimeSpan.FromSeconds(1));

        var getPrice = Self(Assert.Single(h.Finished, f => f.Graph.Function == "product-purchase-get-price").Graph);
        Assert.Equal("b", getPrice.Attributes!["callerCallId"]);
        Assert.False(getPrice.Attributes.ContainsKey("untracedCall"));
    }

    internal static InvocationRecord Record(string callId, string function, string path, string? query, DateTimeOffset start, DateTimeOffset end,
        string? parentSpan = null, string? client = "127.0.0.1:1234", string? traceId = null, string? spanId = null) =>
        new(callId, traceId ?? TraceIds.NewTraceId(), spanId ?? TraceIds.NewSpanId(), parentSpan, parentSpan, function, "GET", path, query, 200, 0, 10, start, end, 0, 0,
            client, 5, null, false, null, false, null, "ok");
}
