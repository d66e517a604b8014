"""catalog.yml <-> models: the schema of the file, and loading it."""
