"""Tests of telling the world: Slack, ChatOps, outgoing webhooks, GitHub deployments, Grafana."""
