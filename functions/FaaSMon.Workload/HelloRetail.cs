namespace FaaSMon.Workload;

/// <summary>Names and seed data of the hello-retail functions (functions/README.md), in one place.</summary>
internal static class HelloRetail
{
    public const string CatalogBuilder = "product-catalog-builder";
    public const string CatalogApi = "product-catalog-api";
    public const string PhotosRegister = "product-photos-register";
    public const string Photos = "product-photos";
    public const string PhotosMessage = "product-photos-message";
    public const string PhotosReceive = "product-photos-receive";
    public const string Purchase = "product-purchase";
    public const string PurchaseGetPrice = "product-purchase-get-price";
    public const string PurchasePublish = "product-purchase-publish";

    public static IReadOnlyList<string> SeedCategories { get; } = ["cameras", "lenses", "tripods", "bags"];

    public static IReadOnlyList<string> SeedPhotographers { get; } = ["ph-001", "ph-002"];

    /// <summary>The seeded customers and their passwords (only hashes are in the store).</summary>
    public static IReadOnlyList<(string User, string Password)> Customers { get; } =
        [("alice", "alice-pass-1"), ("bob", "bob-pass-2"), ("carol", "carol-pass-3")];
}
