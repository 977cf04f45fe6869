using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FaaSMon.Classifier.Models;

/// <summary>
/// Constants as long-lived <see cref="Scalar"/>s. A number passed where TorchSharp wants a Scalar becomes a temporary
/// native Scalar freed by the GC finalizer, which can run while the native call still reads it (TorchSharp issue #1434):
/// seen here as a rare "Expected false to be true ... toFloat" under allocation pressure. Static fields stay reachable.
/// </summary>
internal static class Scalars
{
    public static readonly Scalar One = 1.ToScalar();
}

/// <summary>
/// Adam (Kingma &amp; Ba) with L2 weight decay, written with Scalars this class owns, for the reason on <see cref="Scalars"/>:
/// TorchSharp's own optimizers create temporary Scalars on every step.
/// </summary>
internal sealed class ScalarSafeAdam : IDisposable
{
    private readonly List<Parameter> _parameters;
    private readonly List<Tensor> _firstMoments;
    private readonly List<Tensor> _secondMoments;
    private readonly double _learningRate;
    private readonly double _beta1;
    private readonly double _beta2;
    private readonly Scalar _beta1Scalar;
    private readonly Scalar _oneMinusBeta1;
    private readonly Scalar _beta2Scalar;
    private readonly Scalar _oneMinusBeta2;
    private readonly Scalar _epsilon;
    private readonly Scalar _weightDecay;
    private int _step;

    public ScalarSafeAdam(IEnumerable<Parameter> parameters, double learningRate, double weightDecay = 0, double beta1 = 0.9, double beta2 = 0.999, double epsilon = 1e-8)
    {
        _parameters = [.. parameters.Where(p => p.requires_grad)];
        _firstMoments = [.. _parameters.Select(p => zeros_like(p).DetachFromDisposeScope())];
        _secondMoments = [.. _parameters.Select(p => zeros_like(p).DetachFromDisposeScope())];
        (_learningRate, _beta1, _beta2) = (learningRate, beta1, beta2);
        _beta1Scalar = beta1.ToScalar();
        _oneMinusBeta1 = (1 - beta1).ToScalar();
        _beta2Scalar = beta2.ToScalar();
        _oneMinusBeta2 = (1 - beta2).ToScalar();
        _epsilon = epsilon.ToScalar();
        _weightDecay = weightDecay.ToScalar();
    }

    public void zero_grad()
    {
        foreach (var parameter in _parameters)
        {
            parameter.grad?.zero_();
        }
    }

    public void step()
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        _step++;
        var stepSize = _learningRate * Math.Sqrt(1 - Math.Pow(_beta2, _step)) / (1 - Math.Pow(_beta1, _step));
        using var negativeStepSize = (-stepSize).ToScalar();
        for (var i = 0; i < _parameters.Count; i++)
        {
            var parameter = _parameters[i];
            if (parameter.grad is not { } grad)
            {
                continue;
            }

            var gradient = grad.add(parameter, alpha: _weightDecay);
            _firstMoments[i].mul_(_beta1Scalar).add_(gradient, alpha: _oneMinusBeta1);
            _secondMoments[i].mul_(_beta2Scalar).addcmul_(gradient, gradient, value: _oneMinusBeta2);
            // add_(Scalar) alone makes a temporary alpha Scalar (the finalizer race): pass alpha held here.
            parameter.addcdiv_(_firstMoments[i], _secondMoments[i].sqrt().add_(_epsilon, Scalars.One), value: negativeStepSize);
        }
    }

    public void Dispose()
    {
        foreach (var tensor in _firstMoments.Concat(_secondMoments))
        {
            tensor.Dispose();
        }

        foreach (var scalar in new[] { _beta1Scalar, _oneMinusBeta1, _beta2Scalar, _oneMinusBeta2, _epsilon, _weightDecay })
        {
            scalar.Dispose();
        }
    }
}
