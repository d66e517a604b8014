"""Gantry's version: the page footer, /metrics (gantry_build_info), backups' manifests and
`manage.py version` show it. CHANGELOG.md says what each one changed and how to upgrade."""

VERSION = "0.22.0.dev0"
