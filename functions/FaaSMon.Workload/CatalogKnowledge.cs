using System.Text.Json;

namespace FaaSMon.Workload;

/// <summary>
/// What a shopper has seen of the store so far: categories, product ids and photographers, learnt from answers, so benign
/// traffic browses and buys what really exists (and what earlier benign requests created).
/// </summary>
internal sealed class CatalogKnowledge
{
    private readonly Lock gate = new();
    private readonly List<string> categories = [.. HelloRetail.SeedCategories];
    private readonly List<string> products = [AttackPayloads.VictimProduct];
    private readonly List<string> photographers = [.. HelloRetail.SeedPhotographers];

    public string PickCategory(Random random) => Pick(categories, random);

    public string PickProduct(Random random) => Pick(products, random);

    public string PickPhotographer(Random random) => Pick(photographers, random);

    public int ProductCount
    {
        get
        {
            lock (gate)
            {
                return products.Count;
            }
        }
    }

    /// <summary>Learns ids from a successful answer of <paramref name="function"/>.</summary>
    public void Learn(string function, GatewayResponse response)
    {
        if (!response.IsSuccess || response.Json() is not { } json)
        {
            return;
        }

        lock (gate)
        {
            switch (function)
            {
                case HelloRetail.CatalogApi when json.ValueKind == JsonValueKind.Array:
                    foreach (var item in json.EnumerateArray())
                    {
                        if (item.ValueKind == JsonValueKind.String)
                        {
                            AddOnce(categories, item.GetString());
                        }
                        else if (item.ValueKind == JsonValueKind.Object && item.TryGetProperty("price", out _))
                        {
                            AddOnce(products, Text(item, "id"));
                        }
                        else
                        {
                            AddOnce(categories, Text(item, "name") ?? Text(item, "id"));
                        }
                    }

                    break;
                case HelloRetail.CatalogBuilder when json.ValueKind == JsonValueKind.Object:
                    if (json.TryGetProperty("price", out _))
                    {
                        AddOnce(products, Text(json, "id"));
                    }
                    else
                    {
                        AddOnce(categories, Text(json, "name"));
                    }

                    break;
                case HelloRetail.PhotosRegister when json.ValueKind == JsonValueKind.Object:
                    AddOnce(photographers, Text(json, "id"));
                    break;
            }
        }
    }

    private string Pick(List<string> from, Random random)
    {
        lock (gate)
        {
            return from[random.Next(from.Count)];
        }
    }

    private static void AddOnce(List<string> list, string? value)
    {
        if (!string.IsNullOrWhiteSpace(value) && !list.Contains(value))
        {
            list.Add(value);
        }
    }

    private static string? Text(JsonElement element, string property) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(property, out var value) && value.ValueKind == JsonValueKind.String
            ? value.GetString()
            : null;
}
