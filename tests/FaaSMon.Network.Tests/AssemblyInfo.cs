// The testbed tests start real namespaces and servers, and torch's seed is process-wide: one test at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
