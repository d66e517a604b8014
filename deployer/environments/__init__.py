"""Who may deploy and when.

access.py     grants and the permission policy (one query per request)
locks.py      locking an environment, with a reason and an expiry
leases.py     shared test environments claimed by whoever deploys there
on_demand.py  what a person may ask for now: Refresh, Run now (API tests)
audit.py      the append-only audit log every action writes
"""
