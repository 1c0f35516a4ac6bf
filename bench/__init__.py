"""Benchmarks: run with ``make bench`` (``python -m bench``); they print figures, never assert."""
