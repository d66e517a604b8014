"""catalog.yml <-> models.

schema.py  the shape of the file (pydantic models)
load.py    reading it (every problem with its line) and applying it idempotently
"""
