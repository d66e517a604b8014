"""Telling people: the Slack outbox and the story a deploy's message tells, Slack identities, GitHub deployments."""
