"""For whoever runs Gantry.

prometheus.py     /metrics, read from the database at scrape time
readiness.py      /readyz: the database and the broker answer
system_checks.py  `manage.py check` refuses half-configured integrations
rounds.py         periodic tasks claim their round: two schedulers by mistake do nothing twice
"""
