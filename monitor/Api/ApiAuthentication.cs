using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FaaSMon.Monitor.Api;

/// <summary>
/// The API's credentials, read from a secrets folder as the OpenFaaS gateway reads its own (<c>basic-auth-user</c>,
/// <c>basic-auth-password</c>), plus an optional bearer token (<c>api-token</c>) for machines.
/// </summary>
internal sealed record ApiCredentials(string User, string Password, string? Token)
{
    public const string UserFile = "basic-auth-user";
    public const string PasswordFile = "basic-auth-password";
    public const string TokenFile = "api-token";

    /// <summary>
    /// Reads the credentials from <paramref name="directory"/>; with <paramref name="create"/>, a missing pair is
    /// generated (user <c>admin</c>, 32 random bytes of password, files mode 0600), as faasd does on first start.
    /// </summary>
    /// <exception cref="InvalidOperationException">The files are missing (and not to be created) or empty.</exception>
    public static ApiCredentials Load(string directory, bool create)
    {
        var user = Path.Combine(directory, UserFile);
        var password = Path.Combine(directory, PasswordFile);
        if (create && !File.Exists(user) && !File.Exists(password))
        {
            Directory.CreateDirectory(directory);
            File.SetUnixFileMode(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            WriteSecret(user, "admin");
            WriteSecret(password, Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32)));
        }

        if (!File.Exists(user) || !File.Exists(password))
        {
            throw new InvalidOperationException($"the API's credentials are missing: {user} and {password} must both exist");
        }

        var u = File.ReadAllText(user).Trim();
        var p = File.ReadAllText(password).Trim();
        if (u.Length == 0 || p.Length == 0 || u.Contains(':', StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"{user} must hold a user name without ':' and {password} a password, neither empty");
        }

        var tokenFile = Path.Combine(directory, TokenFile);
        var token = File.Exists(tokenFile) ? File.ReadAllText(tokenFile).Trim() : null;
        return new ApiCredentials(u, p, string.IsNullOrEmpty(token) ? null : token);
    }

    private static void WriteSecret(string path, string value)
    {
        using var file = new FileStream(path, new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.Write,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        });
        file.Write(Encoding.UTF8.GetBytes(value));
    }
}

/// <summary>Basic (user and password) or bearer (token) authentication, compared in constant time.</summary>
internal sealed class ApiAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder, ApiCredentials credentials)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "faasmon";

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var header = Request.Headers.Authorization.ToString();
        if (header.Length == 0)
        {
            return Task.FromResult(AuthenticateResult.NoResult());
        }

        if (header.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase))
        {
            string decoded;
            try
            {
                decoded = Encoding.UTF8.GetString(Convert.FromBase64String(header[6..].Trim()));
            }
            catch (FormatException)
            {
                return Task.FromResult(AuthenticateResult.Fail("malformed basic credentials"));
            }

            var colon = decoded.IndexOf(':', StringComparison.Ordinal);
            if (colon < 0 || !Same(decoded[..colon], credentials.User) | !Same(decoded[(colon + 1)..], credentials.Password))
            {
                return Task.FromResult(AuthenticateResult.Fail("wrong user or password"));
            }

            return Task.FromResult(Success(credentials.User));
        }

        if (header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) && credentials.Token is { } token)
        {
            return Task.FromResult(Same(header[7..].Trim(), token) ? Success("token") : AuthenticateResult.Fail("wrong token"));
        }

        return Task.FromResult(AuthenticateResult.Fail("unsupported authorization scheme"));
    }

    protected override Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        Response.StatusCode = StatusCodes.Status401Unauthorized;
        Response.Headers.WWWAuthenticate = "Basic realm=\"faasmon\", charset=\"UTF-8\"";
        return Task.CompletedTask;
    }

    private static AuthenticateResult Success(string name) =>
        AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(new ClaimsIdentity([new Claim(ClaimTypes.Name, name)], SchemeName)), SchemeName));

    private static bool Same(string given, string expected) =>
        CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(given)), SHA256.HashData(Encoding.UTF8.GetBytes(expected)));
}
