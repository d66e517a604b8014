"""Tests of the house rules: layout, docs, the fakes' schemas."""
