"""Benchmarks and data generators (see bench/README.md)."""
