"""The `gantry` command: a client of a Gantry server's REST API (never its database or settings)."""
