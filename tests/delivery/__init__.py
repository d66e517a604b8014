"""Tests of continuous delivery and delivery metrics."""
