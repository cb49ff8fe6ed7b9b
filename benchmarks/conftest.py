"""pytest configuration of the benchmark suite."""
