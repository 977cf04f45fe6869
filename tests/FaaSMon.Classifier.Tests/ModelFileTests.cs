using FaaSMon.Classifier.Features;
using FaaSMon.Classifier.Models;
using Microsoft.Extensions.Logging.Abstractions;

namespace FaaSMon.Classifier.Tests;

public sealed class ModelFileTests : IDisposable
{
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("faasmon-model-");

    public void Dispose() => _directory.Delete(recursive: true);

    private static GnnModel Trained(string mode)
    {
        var graphs = ModelTests.Labeled(SyntheticGraphs.Dataset(seed: 5, benign: 20, perFamily: 6));
        return new GnnTrainer(NullLogger<GnnTrainer>.Instance).Train(
            new GnnOptions(GnnArch.Sage, Enum.Parse<TrainingMode>(mode, ignoreCase: true)), new TrainingOptions(Epochs: 3, BatchSize: 16), graphs);
    }

    [Theory]
    [InlineData("supervised")]
    [InlineData("anomaly")]
    public void Save_then_load_gives_identical_predictions(string mode)
    {
        var test = SyntheticGraphs.Dataset(seed: 6, benign: 10, perFamily: 4).Select(GraphFeatures.From).ToList();
        var path = Path.Combine(_directory.FullName, "model.gnn");
        using var model = Trained(mode);
        model.Save(path);
        using var loaded = GnnModel.Load(path);

        Assert.Equal(model.Name, loaded.Name);
        Assert.Equal(model.Threshold, loaded.Threshold);
        Assert.Equal(model.Predict(test), loaded.Predict(test));
    }

    [Fact]
    public void A_flipped_byte_in_the_weights_is_a_clear_error()
    {
        var path = Path.Combine(_directory.FullName, "model.gnn");
        using (var model = Trained("supervised"))
        {
            model.Save(path);
        }

        var bytes = File.ReadAllBytes(path);
        bytes[^100] ^= 0xff;
        File.WriteAllBytes(path, bytes);
        var error = Assert.Throws<ModelFileException>(() => GnnModel.Load(path));
        Assert.Contains("corrupt", error.Message, StringComparison.Ordinal);

        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        Assert.Contains("truncated", Assert.Throws<ModelFileException>(() => GnnModel.Load(path)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Not_a_model_file_or_another_feature_layout_is_a_clear_error()
    {
        var path = Path.Combine(_directory.FullName, "model.gnn");
        File.WriteAllText(path, "{\"hello\": 1}");
        Assert.Contains("not a FaaSMon model file", Assert.Throws<ModelFileException>(() => GnnModel.Load(path)).Message, StringComparison.Ordinal);

        using (var model = Trained("supervised"))
        {
            model.Save(path);
        }

        var text = File.ReadAllBytes(path);
        var header = System.Text.Encoding.UTF8.GetString(text, 0, Array.IndexOf(text, (byte)'\n', Array.IndexOf(text, (byte)'\n') + 1));
        var changed = header.Replace($"\"layoutVersion\":{GraphFeatures.LayoutVersion}", "\"layoutVersion\":99", StringComparison.Ordinal);
        Assert.NotEqual(header, changed);
        File.WriteAllBytes(path, [.. System.Text.Encoding.UTF8.GetBytes(changed), .. text.AsSpan(System.Text.Encoding.UTF8.GetByteCount(header))]);
        var error = Assert.Throws<ModelFileException>(() => GnnModel.Load(path));
        Assert.Contains("layout 99", error.Message, StringComparison.Ordinal);
        Assert.Contains("retrain", error.Message, StringComparison.Ordinal);

        Assert.Throws<ModelFileException>(() => GnnModel.Load(Path.Combine(_directory.FullName, "missing.gnn")));
    }

    [Fact]
    public void Weights_of_another_architecture_are_a_clear_error()
    {
        var path = Path.Combine(_directory.FullName, "model.gnn");
        using (var model = Trained("supervised"))
        {
            model.Save(path);
        }

        var text = File.ReadAllBytes(path);
        var header = System.Text.Encoding.UTF8.GetString(text, 0, Array.IndexOf(text, (byte)'\n', Array.IndexOf(text, (byte)'\n') + 1));
        var changed = header.Replace("\"hidden\":32", "\"hidden\":8", StringComparison.Ordinal);
        Assert.NotEqual(header, changed);
        File.WriteAllBytes(path, [.. System.Text.Encoding.UTF8.GetBytes(changed), .. text.AsSpan(System.Text.Encoding.UTF8.GetByteCount(header))]);
        Assert.Contains("do not fit", Assert.Throws<ModelFileException>(() => GnnModel.Load(path)).Message, StringComparison.Ordinal);
    }
}
