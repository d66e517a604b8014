"""Telling people.

outbox.py              the Slack outbox: one message per deploy, updated in place, retried
story.py               what a deploy's message says (Block Kit), and the API test results reply
identity.py            a Slack user's Gantry account (by e-mail)
github_deployments.py  every deploy as a GitHub deployment with statuses
"""
