"""Adaptive Cards and Teams delivery. Imports nothing else of ours."""
