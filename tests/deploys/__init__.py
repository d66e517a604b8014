"""Tests of the deploy flow on real hosts: requests, builds, rollouts, health, canaries, rollbacks."""
