"""A local Microsoft 365 tenant over real HTTP.

Imports nothing else of ours: it is the counterpart, never a mirror of our client code.
"""
