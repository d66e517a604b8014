"""Tests of post-deploy API tests."""
