"""The demo `make run` sets up: a git repository of a tiny service, loopback sshd hosts that trust
Gantry's key, a catalog and an admin.
"""
