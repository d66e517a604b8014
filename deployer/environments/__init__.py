"""Who may deploy and when: access, locks, leases, and the audit log they write."""
