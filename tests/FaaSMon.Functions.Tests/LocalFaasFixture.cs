using System.Net.Http.Headers;
using System.Text;
using FaaSMon.LocalFaaS;

namespace FaaSMon.Functions.Tests;

/// <summary>One real LocalFaaS (PostgreSQL, gateway, every hello-retail function as a warm container) for a test collection.</summary>
public sealed class LocalFaasFixture : IAsyncLifetime
{
    private string _state = "";

    public LocalFaasHost Host { get; private set; } = null!;

    /// <summary>The gateway, anonymous, as faas-cli invoke calls it.</summary>
    public HttpClient Gateway { get; private set; } = null!;

    /// <summary>The gateway with the admin's basic auth, as faas-cli deploy calls it.</summary>
    public HttpClient Admin { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        _state = TestState.NewDirectory();
        Host = await LocalFaasHost.StartAsync(new LocalFaasOptions { Port = 0, StateDirectory = _state });
        Gateway = new HttpClient { BaseAddress = Host.GatewayUrl, Timeout = TimeSpan.FromSeconds(30) };
        Admin = new HttpClient { BaseAddress = Host.GatewayUrl, Timeout = TimeSpan.FromSeconds(60) };
        Admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic",
            Convert.ToBase64String(Encoding.UTF8.GetBytes($"{Host.AdminCredential.UserName}:{Host.AdminCredential.Password}")));
    }

    public async Task DisposeAsync()
    {
        Gateway?.Dispose();
        Admin?.Dispose();
        if (Host is not null)
        {
            await Host.DisposeAsync();
        }

        TestState.Delete(_state);
    }
}

[CollectionDefinition("localfaas")]
public sealed class LocalFaasCollection : ICollectionFixture<LocalFaasFixture>;

/// <summary>State folders for test runtimes: outside /tmp (containers mount their own), removed afterwards.</summary>
public static class TestState
{
    public static string NewDirectory() =>
        Path.Combine("/var/lib/faasmon/tests", $"{DateTime.UtcNow:HHmmss}-{Guid.NewGuid().ToString("N")[..8]}");

    public static void Delete(string directory)
    {
        if (directory.Length > 0 && Directory.Exists(directory))
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
