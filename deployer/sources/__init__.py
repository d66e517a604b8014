"""Where branches and builds come from, and how fresh they are.

branches.py            branches from GitHub's API or a git mirror
builds.py              builds from Jenkins
webhooks.py            GitHub deliveries, recorded then applied by a worker
freshness.py           each sync's attempt, success or error
integration_health.py  each outside system's health: pause after failures, GitHub's rate budget
"""
