"""Gantry's management commands."""
