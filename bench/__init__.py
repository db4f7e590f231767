"""Benchmarks: ``make bench`` (``python -m bench``). Results land in ``bench/results/*.json``."""
