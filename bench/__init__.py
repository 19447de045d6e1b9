"""Benchmark harness for tricorn (see bench/README.md)."""
