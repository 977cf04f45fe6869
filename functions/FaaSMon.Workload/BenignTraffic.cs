using System.Globalization;

namespace FaaSMon.Workload;

/// <summary>One benign top-level request and the answer a healthy store gives it.</summary>
/// <param name="Kind">What the shopper or back office is doing, for progress and logs.</param>
/// <param name="ExpectedStatus">Null when any 2xx is right; 401/402/404 for the requests that fail on purpose.</param>
internal sealed record BenignRequest(string Kind, GatewayRequest Request, int? ExpectedStatus = null)
{
    public bool IsDeliberateError => ExpectedStatus is >= 400;

    public bool AnsweredAsExpected(GatewayResponse response) =>
        ExpectedStatus is { } expected ? response.Status == expected : response.IsSuccess;
}

/// <summary>
/// Benign hello-retail traffic: browsing, back-office catalog edits, photographers and photo flows, purchases (some with
/// coupons), and the small share of failures real traffic has (a mistyped password, a declined card, a stale product link).
/// Request <c>i</c> draws from <c>Random(seed, i)</c>, so a seed gives the same traffic whatever the concurrency.
/// </summary>
internal sealed class BenignTraffic(CatalogKnowledge catalog, PhotoHost photoHost, int seed)
{
    private static readonly (string Kind, int Weight)[] Mix =
    [
        ("list-categories", 10),
        ("list-products", 10),
        ("list-products-sorted", 8),
        ("get-product", 14),
        ("create-category", 2),
        ("create-product", 6),
        ("register-photographer", 4),
        ("request-photo", 7),
        ("submit-photo", 8),
        ("purchase", 16),
        ("purchase-with-coupon", 6),
        ("wrong-password", 3),
        ("declined-card", 3),
        ("unknown-product", 3),
    ];

    private static readonly string[] SortExpressions =
    [
        "a.price-b.price",
        "b.price-a.price",
        "a.name.localeCompare(b.name)",
        "b.name.localeCompare(a.name)",
        "a.price-b.price||a.name.localeCompare(b.name)",
    ];

    private static readonly string[] Coupons = ["price*0.9", "price*0.95", "Math.max(price-5,price*0.8)", "quantity>1?price*0.85:price"];

    private static readonly string[] Brands =
        ["Canon", "Nikon", "Sony", "Fujifilm", "Panasonic", "OM System", "Leica", "Pentax", "Sigma", "Tamron", "Manfrotto", "Peak Design", "Lowepro", "Think Tank"];

    private static readonly string[] Models = ["Alpha", "Pro", "Lite", "Travel", "Studio", "Carbon", "Compact", "Vario", "Nomad", "Vista"];

    private static readonly string[] NewCategories = ["lighting", "drones", "filters", "memory-cards", "flashes", "straps", "batteries", "gimbals"];

    private static readonly string[] FirstNames = ["Ana", "Ben", "Chen", "Dara", "Eli", "Femi", "Goran", "Hana", "Ines", "Jon", "Kiri", "Lena"];

    private static readonly string[] LastNames = ["Silva", "Okafor", "Nguyen", "Schmidt", "Haddad", "Kowalski", "Tanaka", "Moreau", "Osei", "Larsen"];

    private static readonly string[] Views = ["front", "back", "side", "top", "detail", "lifestyle"];

    public BenignRequest Create(int index)
    {
        var random = new Random(unchecked((seed * 1_000_003) + index));

        // A session starts by looking around, so the first requests learn what the store holds.
        var kind = index switch
        {
            0 => "list-categories",
            1 => "list-products",
            _ => PickKind(random),
        };

        return kind switch
        {
            "list-categories" => new(kind, GatewayRequest.Get(HelloRetail.CatalogApi, "/categories")),
            "list-products" => new(kind, GatewayRequest.Get(HelloRetail.CatalogApi, $"/products?category={Uri.EscapeDataString(catalog.PickCategory(random))}")),
            "list-products-sorted" => new(kind, GatewayRequest.Get(
                HelloRetail.CatalogApi,
                $"/products?category={Uri.EscapeDataString(catalog.PickCategory(random))}&sort={Uri.EscapeDataString(Pick(SortExpressions, random))}")),
            "get-product" => new(kind, GatewayRequest.Get(HelloRetail.CatalogApi, $"/products/{Uri.EscapeDataString(catalog.PickProduct(random))}")),
            "create-category" => CreateCategory(kind, random),
            "create-product" => CreateProduct(kind, random),
            "register-photographer" => RegisterPhotographer(kind, random),
            "request-photo" => RequestPhoto(kind, random),
            "submit-photo" => SubmitPhoto(kind, random),
            "purchase" => Purchase(kind, random, coupon: null),
            "purchase-with-coupon" => Purchase(kind, random, Pick(Coupons, random)),
            "wrong-password" => WrongPassword(kind, random),
            "declined-card" => DeclinedCard(kind, random),
            "unknown-product" => new(kind, GatewayRequest.Get(HelloRetail.CatalogApi, $"/products/p-{Hex(random, 6)}"), 404),
            _ => throw new InvalidOperationException($"no benign request of kind {kind}"),
        };
    }

    /// <summary>A Luhn-valid 16-digit card number (Visa or Mastercard prefix).</summary>
    public static string ValidCardNumber(Random random)
    {
        var digits = new int[16];
        var prefix = random.Next(2) == 0 ? [4] : new[] { 5, random.Next(1, 6) };
        prefix.CopyTo(digits, 0);
        for (var i = prefix.Length; i < 15; i++)
        {
            digits[i] = random.Next(10);
        }

        digits[15] = LuhnCheckDigit(digits.AsSpan(0, 15));
        return string.Concat(digits);
    }

    /// <summary>A card number with a wrong check digit: what authorize-cc declines.</summary>
    public static string DeclinedCardNumber(Random random)
    {
        var valid = ValidCardNumber(random);
        var wrongCheck = (valid[^1] - '0' + 1 + random.Next(9)) % 10;
        return string.Concat(valid.AsSpan(0, 15), wrongCheck.ToString(CultureInfo.InvariantCulture));
    }

    public static bool IsLuhnValid(string number)
    {
        var sum = 0;
        for (var i = 0; i < number.Length; i++)
        {
            var digit = number[number.Length - 1 - i] - '0';
            if (i % 2 == 1)
            {
                digit *= 2;
                if (digit > 9)
                {
                    digit -= 9;
                }
            }

            sum += digit;
        }

        return number.Length > 0 && number.All(char.IsAsciiDigit) && sum % 10 == 0;
    }

    private static int LuhnCheckDigit(ReadOnlySpan<int> payload)
    {
        var sum = 0;
        for (var i = 0; i < payload.Length; i++)
        {
            // Counting from the right of the full number, the check digit is position 0, so the payload's last digit doubles.
            var digit = payload[payload.Length - 1 - i];
            if (i % 2 == 0)
            {
                digit *= 2;
                if (digit > 9)
                {
                    digit -= 9;
                }
            }

            sum += digit;
        }

        return (10 - (sum % 10)) % 10;
    }

    private static BenignRequest CreateCategory(string kind, Random random)
    {
        var name = $"{Pick(NewCategories, random)}-{Hex(random, 3)}";
        return new(kind, GatewayRequest.Post(HelloRetail.CatalogBuilder, "/", new
        {
            action = "category",
            name,
            description = $"Everything for {name.Split('-')[0]}",
        }));
    }

    private BenignRequest CreateProduct(string kind, Random random)
    {
        var brand = Pick(Brands, random);
        var category = catalog.PickCategory(random);
        var name = $"{brand} {Pick(Models, random)} {random.Next(2, 99)}";
        var price = Math.Round(9.99 + (random.NextDouble() * 2400), 2);
        return new(kind, GatewayRequest.Post(HelloRetail.CatalogBuilder, "/", new
        {
            action = "product",
            category,
            name,
            brand,
            description = $"{name}, new in {category}",
            price,
        }));
    }

    private static BenignRequest RegisterPhotographer(string kind, Random random)
    {
        var first = Pick(FirstNames, random);
        var last = Pick(LastNames, random);
        return new(kind, GatewayRequest.Post(HelloRetail.PhotosRegister, "/", new
        {
            name = $"{first} {last}",
            email = $"{first.ToLowerInvariant()}.{last.ToLowerInvariant()}{random.Next(100)}@example.com",
            phone = $"+1-555-01{random.Next(100):00}",
        }));
    }

    private BenignRequest RequestPhoto(string kind, Random random)
    {
        var product = catalog.PickProduct(random);
        object body = random.Next(2) == 0
            ? new { product }
            : new { product, photographer = catalog.PickPhotographer(random) };
        return new(kind, GatewayRequest.Post(HelloRetail.Photos, "/request", body));
    }

    private BenignRequest SubmitPhoto(string kind, Random random)
    {
        var product = catalog.PickProduct(random);
        var fileName = $"{product}-{Pick(Views, random)}-{Hex(random, 2)}.{(random.Next(2) == 0 ? "jpg" : "png")}";
        return new(kind, GatewayRequest.Post(HelloRetail.Photos, "/photos", new
        {
            photographer = catalog.PickPhotographer(random),
            product,
            url = photoHost.PhotoUrl(fileName).AbsoluteUri,
        }));
    }

    private BenignRequest Purchase(string kind, Random random, string? coupon)
    {
        var (user, password) = Pick(HelloRetail.Customers, random);
        var product = catalog.PickProduct(random);
        var quantity = random.Next(1, 4);
        var card = ValidCardNumber(random);
        object body = coupon is null
            ? new { user, password, product, quantity, card }
            : new { user, password, product, quantity, card, coupon };
        return new(kind, GatewayRequest.Post(HelloRetail.Purchase, "/", body));
    }

    private BenignRequest WrongPassword(string kind, Random random)
    {
        var (user, password) = Pick(HelloRetail.Customers, random);
        var typo = password[..^1] + (char)('0' + ((password[^1] - '0' + 1) % 10));
        return new(kind, GatewayRequest.Post(HelloRetail.Purchase, "/", new
        {
            user,
            password = typo,
            product = catalog.PickProduct(random),
            quantity = 1,
            card = ValidCardNumber(random),
        }), 401);
    }

    private BenignRequest DeclinedCard(string kind, Random random)
    {
        var (user, password) = Pick(HelloRetail.Customers, random);
        return new(kind, GatewayRequest.Post(HelloRetail.Purchase, "/", new
        {
            user,
            password,
            product = catalog.PickProduct(random),
            quantity = 1,
            card = DeclinedCardNumber(random),
        }), 402);
    }

    private static string PickKind(Random random)
    {
        var roll = random.Next(Mix.Sum(m => m.Weight));
        foreach (var (kind, weight) in Mix)
        {
            if ((roll -= weight) < 0)
            {
                return kind;
            }
        }

        return Mix[^1].Kind;
    }

    private static T Pick<T>(IReadOnlyList<T> from, Random random) => from[random.Next(from.Count)];

    private static string Hex(Random random, int bytes)
    {
        var buffer = new byte[bytes];
        random.NextBytes(buffer);
        return Convert.ToHexStringLower(buffer);
    }
}
