"""Bit-exact NumPy golden models (imports hw only)."""
