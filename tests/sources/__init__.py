"""Tests of what the outside systems say: branches, tags, builds, checks, webhooks, change sets."""
