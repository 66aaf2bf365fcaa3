"""Benchmarks: `make bench` runs them all (`python -m bench`), or one: `python -m bench NAME`."""
