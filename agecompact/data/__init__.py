"""Datasets: filtering, preprocessing into the 64x64 BGR uint8 ``.npz`` schema, and loading."""
