"""Continuous delivery (following a branch) and the DORA delivery metrics."""
