"""Endpoints other systems call: GitHub and Jenkins webhooks, Slack commands and buttons."""
