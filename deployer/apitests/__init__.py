"""Post-deploy API tests.

schema.py   the shape of a suite (catalog api_tests: or .gantry/tests.yml)
files.py    .gantry/tests.yml from a branch, read as hostile
runner.py   running one suite: steps, variables, assertions
network.py  where a request may go, and how much of an answer is read
runs.py     running an environment's suites with the secrets and origins it grants, and keeping the runs
"""
