"""Tests of catalog.yml: loading, files, the catalog in git, its schema."""
