// Torch's seed and thread pool are process-wide: tests that train run one at a time to stay reproducible.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
