namespace FaaSMon.Tracer;

/// <summary>The chosen backend cannot run here: a missing package or capability, named in the message with the fix.</summary>
public sealed class TracerUnavailableException : Exception
{
    public TracerUnavailableException()
    {
    }

    public TracerUnavailableException(string message)
        : base(message)
    {
    }

    public TracerUnavailableException(string message, Exception inner)
        : base(message, inner)
    {
    }
}
