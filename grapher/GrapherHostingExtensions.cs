using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace FaaSMon.Grapher;

public static class GrapherHostingExtensions
{
    /// <summary>Registers the grapher (options from the <c>Grapher</c> section, validated at start) as a hosted service.</summary>
    public static IHostApplicationBuilder AddFaaSMonGrapher(this IHostApplicationBuilder builder, Action<GrapherOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var options = builder.Services.AddOptions<GrapherOptions>().BindConfiguration(GrapherOptions.Section).ValidateOnStart();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        builder.Services.AddSingleton<IValidateOptions<GrapherOptions>, GrapherOptionsValidator>();
        builder.Services.AddSingleton<InvocationGrapher>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<InvocationGrapher>());
        return builder;
    }
}
