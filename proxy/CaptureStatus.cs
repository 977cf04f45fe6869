namespace FaaSMon.Proxy;

/// <summary>Whether packets are being captured: read by fail-closed mode and /healthz.</summary>
internal sealed class CaptureStatus
{
    private volatile bool _running;
    private volatile string? _error;

    public bool Running => _running;

    public string? Error => _error;

    public void Started()
    {
        _error = null;
        _running = true;
    }

    public void Stopped(string? error)
    {
        _running = false;
        _error = error;
    }
}
