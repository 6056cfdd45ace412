"""Benchmarks: not part of the test suite; each module documents its command and output."""
