"""Benchmarks behind ``tollguard bench NAME``: each module offers ``run(...) -> dict``."""
