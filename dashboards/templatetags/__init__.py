"""Template helpers for Gantry's pages (`{% load gantry %}`)."""
