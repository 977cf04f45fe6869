using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace FaaSMon.Tracer;

public static class TracerServiceCollectionExtensions
{
    /// <summary>Registers the tracer (options from the <c>Tracer</c> section, validated at start) as a hosted service.</summary>
    public static IHostApplicationBuilder AddFaaSMonTracer(this IHostApplicationBuilder builder, Action<TracerOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var options = builder.Services.AddOptions<TracerOptions>().BindConfiguration(TracerOptions.Section).ValidateOnStart();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        builder.Services.AddSingleton<IValidateOptions<TracerOptions>, TracerOptionsValidator>();
        builder.Services.AddSingleton<SyscallTracer>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<SyscallTracer>());
        return builder;
    }
}
