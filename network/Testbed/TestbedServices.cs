using System.Globalization;
using System.Text;

namespace FaaSMon.Network.Testbed;

/// <summary>
/// The testbed's servers, each a Debian program of its own with a config in the run's state folder, listening only on
/// its testbed address: nginx (web), redis-server, PostgreSQL (its own cluster made with initdb, never the system one),
/// a Node.js API service, and OpenSSH's sshd (the brute-force target). Nothing is started through a shell.
/// </summary>
internal static class TestbedServices
{
    public const int WebPort = 80;
    public const int RedisPort = 6379;
    public const int PostgresPort = 5432;
    public const int ApiPort = 8080;
    public const int SshPort = 22;
    public const string DbUser = "faasmon";

    /// <summary>Pages of different sizes, so HTTP flows differ in bytes as real ones do.</summary>
    public static readonly IReadOnlyList<(string Name, int Size)> Pages = [("index.html", 2_000), ("catalog.html", 18_000), ("photo.html", 120_000), ("about.html", 600)];

    public static string PostgresBin { get; } = Directory.Exists("/usr/lib/postgresql")
        ? Directory.GetDirectories("/usr/lib/postgresql").Select(d => Path.Combine(d, "bin")).Where(d => File.Exists(Path.Combine(d, "postgres")))
            .OrderByDescending(d => d, StringComparer.Ordinal).FirstOrDefault() ?? "/usr/lib/postgresql/15/bin"
        : "/usr/lib/postgresql/15/bin";

    /// <summary>Programs the testbed needs, with the Debian package that brings each (./faasmon installs them).</summary>
    public static IReadOnlyList<(string Path, string Package)> Requirements =>
    [
        ("/usr/sbin/nginx", "nginx-light"), ("/usr/bin/redis-server", "redis-server"), (Path.Combine(PostgresBin, "postgres"), "postgresql"),
        ("/usr/sbin/sshd", "openssh-server"), ("/usr/bin/ssh", "openssh-client"), ("/usr/bin/ssh-keygen", "openssh-client"),
        ("/usr/bin/ping", "iputils-ping"), ("/usr/bin/node", "nodejs"), ("/usr/bin/setpriv", "util-linux"), ("/usr/bin/setsid", "util-linux"),
    ];

    public static void CheckRequirements()
    {
        var missing = Requirements.Where(r => !File.Exists(r.Path)).ToList();
        if (missing.Count > 0)
        {
            throw new TestbedException($"the network testbed needs {string.Join(", ", missing.Select(m => m.Path))}: " +
                $"apt-get install {string.Join(' ', missing.Select(m => m.Package).Distinct())} (./faasmon installs them)");
        }
    }

    public static string WriteNginx(string state, string address)
    {
        var root = Directory.CreateDirectory(Path.Combine(state, "www")).FullName;
        var random = new Random(7);
        foreach (var (name, size) in Pages)
        {
            var body = new StringBuilder("<html><body>");
            while (body.Length < size)
            {
                body.Append(CultureInfo.InvariantCulture, $"<p>item {random.Next()}</p>");
            }

            File.WriteAllText(Path.Combine(root, name), body.Append("</body></html>").ToString());
        }

        var dir = Directory.CreateDirectory(Path.Combine(state, "nginx")).FullName;
        var config = Path.Combine(dir, "nginx.conf");
        File.WriteAllText(config, $$"""
            daemon off;
            master_process on;
            worker_processes 1;
            user nobody nogroup;
            pid {{dir}}/nginx.pid;
            error_log {{dir}}/error.log warn;
            events { worker_connections 1024; }
            http {
              access_log off;
              default_type text/html;
              client_body_temp_path {{dir}}/body;
              proxy_temp_path {{dir}}/proxy;
              fastcgi_temp_path {{dir}}/fastcgi;
              uwsgi_temp_path {{dir}}/uwsgi;
              scgi_temp_path {{dir}}/scgi;
              keepalive_timeout 5;
              server {
                listen {{address}}:{{WebPort}} backlog=1024;
                root {{root}};
                location / { }
              }
            }
            """);
        return config;
    }

    public static string WriteApi(string state, string address, string webAddress)
    {
        var dir = Directory.CreateDirectory(Path.Combine(state, "api")).FullName;
        var script = Path.Combine(dir, "api.js");
        // The API answers JSON itself and, for /api/page, calls the web server: service-to-service traffic.
        File.WriteAllText(script, $$"""
            'use strict';
            const http = require('http');
            const items = Array.from({ length: 50 }, (_, i) => ({ id: i, name: 'item-' + i, price: (i * 7) % 90 + 10 }));
            http.createServer((req, res) => {
              const url = new URL(req.url, 'http://api');
              const send = (code, body) => { res.writeHead(code, { 'content-type': 'application/json' }); res.end(JSON.stringify(body)); };
              if (url.pathname === '/api/items') return send(200, items.slice(0, Number(url.searchParams.get('n') || 10)));
              if (url.pathname === '/api/price') return send(200, items[Number(url.searchParams.get('id') || 0) % items.length]);
              if (url.pathname === '/api/health') return send(200, { ok: true });
              if (url.pathname === '/api/page') {
                http.get({ host: '{{webAddress}}', port: {{WebPort}}, path: '/catalog.html', timeout: 2000 }, r => {
                  let n = 0; r.on('data', c => n += c.length); r.on('end', () => send(200, { bytes: n }));
                }).on('error', e => send(502, { error: e.message }));
                return;
              }
              send(404, { error: 'not found' });
            }).listen({{ApiPort}}, '{{address}}');
            """);
        return script;
    }

    public static string WriteSshd(string state, string address)
    {
        var dir = Directory.CreateDirectory(Path.Combine(state, "ssh")).FullName;
        var config = Path.Combine(dir, "sshd_config");
        File.WriteAllText(config, $"""
            Port {SshPort}
            ListenAddress {address}
            HostKey {dir}/ssh_host_ed25519_key
            PidFile {dir}/sshd.pid
            UsePAM no
            PasswordAuthentication yes
            KbdInteractiveAuthentication no
            PubkeyAuthentication no
            PermitRootLogin no
            AllowUsers faasmon-nobody
            MaxAuthTries 3
            MaxStartups 64:30:128
            LoginGraceTime 5
            StrictModes no
            """);
        // The brute-force client's SSH_ASKPASS: prints the guess it is given, so ssh needs no terminal.
        var askpass = Path.Combine(dir, "askpass");
        File.WriteAllText(askpass, "#!/bin/sh\nprintf '%s\\n' \"$FAASMON_GUESS\"\n");
        File.SetUnixFileMode(askpass, UnixFileMode.UserRead | UnixFileMode.UserExecute | UnixFileMode.UserWrite);
        return config;
    }
}
