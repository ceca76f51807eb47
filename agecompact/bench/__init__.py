"""Benchmarks behind ``agecompact bench``: sizes, FLOPs, speed and the seed comparison table."""
