"""Tests of running Gantry: make run/serve, one box and two machines, backups, settings, the queue."""
