"""Tests of the pages, the REST API, the CLI, signing in, a real browser."""
