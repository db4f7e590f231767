"""Benchmarks: ``make bench`` (``python -m bench``); the table lands in ``bench/results.md``."""
