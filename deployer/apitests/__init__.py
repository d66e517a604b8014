"""Post-deploy API tests: the suite schema, suite files from a repository, the runner and where it may send requests,
and runs kept per environment.
"""
