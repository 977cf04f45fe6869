using System.CommandLine;
using System.Globalization;
using FaaSMon.Monitor.Hosting;
using Microsoft.Extensions.Options;

namespace FaaSMon.Monitor.Commands;

/// <summary><c>faasmon serve</c>: the monitor host (verdict API, dashboard, store, alerts) and, all-in-one, the pipeline too.</summary>
internal static class ServeCommand
{
    public static readonly Option<string?> Listen = new("--listen")
    {
        Description = "host:port of the verdict API and dashboard (default 127.0.0.1:8090: exposing it is a deliberate choice).",
    };

    public static readonly Option<DirectoryInfo?> ProxyData = new("--proxy-data")
    {
        Description = "Follow the records of a proxy running elsewhere (DIR/records/*.ndjson, pcap slices) instead of starting one. Read-only. Needs --trace-events.",
    };

    public static readonly Option<FileInfo?> TraceEvents = new("--trace-events")
    {
        Description = "Follow the NDJSON events of `faasmon trace --out FILE` instead of starting a tracer. Needs --proxy-data.",
    };

    public static readonly Option<DirectoryInfo?> DataDir = new("--data-dir")
    {
        Description = "The only place serve writes: SQLite store, graphs, follow positions; all-in-one also LocalFaaS state (default /var/lib/faasmon/monitor).",
    };

    public static readonly Option<DirectoryInfo?> SecretsDir = new("--secrets-dir")
    {
        Description = "basic-auth-user and basic-auth-password (and optionally api-token, for Bearer) for /api and the dashboard, as the gateway's secret_mount_path. Default DATA/secrets, generated on first start.",
    };

    public static readonly Option<FileInfo?> Model = new("--model") { Description = "Model file from `faasmon train`; without one, verdicts come from the rules only." };

    public static readonly Option<FileInfo?> Rules = new("--rules") { Description = "Rules file (YAML) instead of the default rules." };

    public static readonly Option<Uri?> AlertWebhook = new("--alert-webhook")
    {
        Description = "POST a Falco-format JSON alert here for every intrusion verdict (e.g. Falcosidekick).",
        CustomParser = CliParsers.HttpUrl,
    };

    public static readonly Option<string?> Gateway = new("--gateway")
    {
        Description = "All-in-one: host:port of the proxy in front of LocalFaaS, the gateway clients and faas-cli use (default 127.0.0.1:8080).",
    };

    public static readonly Option<string?> Backend = new("--backend") { Description = "All-in-one: strace (default), ebpf, or ptrace (our own ptrace tracer: strace's way, a fraction of its cost)." };

    public static readonly Option<string?> EbpfLoader = new("--ebpf-loader") { Description = "All-in-one, eBPF backend: libbpf (default, our loader) or bpftrace." };

    public static readonly Option<bool> NoPcap = new("--no-pcap") { Description = "All-in-one: do not capture packets." };

    public static readonly Option<int?> MaxInvocations = new("--max-invocations") { Description = "Invocations kept in the store (default 200000); the oldest go first." };

    public static readonly Option<TimeSpan?> Retention = new("--retention") { Description = "How long invocations are kept (default 7.00:00:00)." };

    public static readonly Option<string?> Snapshots = new("--snapshots")
    {
        Description = "On an intrusion, snapshot the instances on its causal path: off, state (/proc state and the private /tmp) or full (also a core of the memory each instance really uses, taken frozen; default).",
    };

    public static readonly Option<string?> DockerHost = new("--docker-host")
    {
        Description = "Docker Engine socket (unix:///var/run/docker.sock) for snapshots alongside OpenFaaS (docker commit, checkpoint where CRIU works).",
    };

    public static readonly Option<FileInfo?> NetworkModel = new("--network-model")
    {
        Description = "Network model from `faasmon train --task network` (TGAT or GCN): the traffic on --network-interface is cut into its " +
            "windows and each window's verdict joins the invocations whose packet flows are in it. Off without one.",
    };

    public static readonly Option<string?> NetworkInterface = new("--network-interface") { Description = "Interface the network view captures (default lo, where LocalFaaS traffic passes)." };

    public static readonly Option<string?> NetworkFilter = new("--network-filter") { Description = "libpcap filter for the network view (default: every frame)." };

    public static readonly Option<bool> Verbose = new("--verbose", "-v") { Description = "Log more." };

    public static Command Create()
    {
        var command = new Command("serve",
            "Run the monitor: verdict API (/api, basic auth or bearer token), dashboard (/), /healthz, /metrics, SQLite store, " +
            "alerts. Without --proxy-data/--trace-events it is all-in-one: LocalFaaS with the hello-retail functions behind the " +
            "proxy, the tracer and the grapher in this process (needs root). Settings also come from appsettings.json and " +
            "FAASMON_Monitor__* environment variables; the command line wins.")
        {
            Listen, ProxyData, TraceEvents, DataDir, SecretsDir, Model, Rules, AlertWebhook, Gateway, Backend, EbpfLoader, NoPcap, MaxInvocations, Retention, Snapshots, DockerHost,
            NetworkModel, NetworkInterface, NetworkFilter, Verbose,
        };
        command.SetAction(async (parse, ct) =>
        {
            var settings = new Dictionary<string, string?>();
            void Set(string key, string? value)
            {
                if (value is not null)
                {
                    settings[$"{ServeOptions.Section}:{key}"] = value;
                }
            }

            Set(nameof(ServeOptions.Listen), parse.GetValue(Listen));
            Set(nameof(ServeOptions.ProxyData), parse.GetValue(ProxyData)?.FullName);
            Set(nameof(ServeOptions.TraceEvents), parse.GetValue(TraceEvents)?.FullName);
            Set(nameof(ServeOptions.DataDirectory), parse.GetValue(DataDir)?.FullName);
            Set(nameof(ServeOptions.SecretsDirectory), parse.GetValue(SecretsDir)?.FullName);
            Set(nameof(ServeOptions.Model), parse.GetValue(Model)?.FullName);
            Set(nameof(ServeOptions.Rules), parse.GetValue(Rules)?.FullName);
            Set(nameof(ServeOptions.AlertWebhook), parse.GetValue(AlertWebhook)?.ToString());
            Set(nameof(ServeOptions.Gateway), parse.GetValue(Gateway));
            Set(nameof(ServeOptions.Backend), parse.GetValue(Backend));
            Set(nameof(ServeOptions.EbpfLoader), parse.GetValue(EbpfLoader));
            Set(nameof(ServeOptions.Pcap), parse.GetValue(NoPcap) ? "false" : null);
            Set(nameof(ServeOptions.MaxInvocations), parse.GetValue(MaxInvocations)?.ToString(CultureInfo.InvariantCulture));
            Set(nameof(ServeOptions.Snapshots), parse.GetValue(Snapshots));
            Set(nameof(ServeOptions.DockerHost), parse.GetValue(DockerHost));
            Set(nameof(ServeOptions.NetworkModel), parse.GetValue(NetworkModel)?.FullName);
            Set(nameof(ServeOptions.NetworkInterface), parse.GetValue(NetworkInterface));
            Set(nameof(ServeOptions.NetworkFilter), parse.GetValue(NetworkFilter));
            Set(nameof(ServeOptions.Retention), parse.GetValue(Retention)?.ToString("c", CultureInfo.InvariantCulture));
            ServeHost host;
            try
            {
                host = await ServeHost.StartAsync([], settings, parse.GetValue(Verbose), ct);
            }
            catch (OptionsValidationException e)
            {
                await Console.Error.WriteLineAsync("faasmon serve: " + string.Join(Environment.NewLine + "faasmon serve: ", e.Failures));
                return 2;
            }
            catch (Exception e) when (e is InvalidOperationException or IOException)
            {
                // e.g. the --listen or --gateway address is taken: one line, not a stack trace
                await Console.Error.WriteLineAsync("faasmon serve: " + e.Message);
                return 2;
            }

            await using (host)
            {
                Console.WriteLine($"FaaSMon monitor: dashboard and API at {host.ApiUrl} (user {host.Credentials.User}, password in {host.Options.SecretsDirectory ?? Path.Combine(host.Options.DataDirectory, "secrets")}/basic-auth-password)");
                if (host.GatewayUrl is { } gateway)
                {
                    Console.WriteLine($"Gateway (proxy in front of LocalFaaS): {gateway}  e.g. curl {gateway}function/product-catalog-api/categories");
                }

                try
                {
                    await Task.Delay(Timeout.Infinite, ct);
                }
                catch (OperationCanceledException)
                {
                }

                Console.WriteLine("Stopping: building the open invocations and storing their verdicts ...");
                await host.DrainAsync(TimeSpan.FromSeconds(1), CancellationToken.None);
            }

            return 0;
        });
        return command;
    }
}
