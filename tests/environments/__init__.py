"""Tests of who may deploy where and when: access, locks, freezes, host keys, SSH reach."""
