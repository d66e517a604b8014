"""`manage.py` commands: deploy, load_catalog, sync_branches, ssh_key, trust_host, demo_setup, demo_hosts."""
