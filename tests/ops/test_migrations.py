"""Every model change has its migration (a change of choices too: the next `migrate` must not surprise)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command


def test_no_model_change_lacks_a_migration(db: None) -> None:
    out = StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=out)
    except SystemExit:
        pytest.fail(f"a model changed without a migration: python manage.py makemigrations\n{out.getvalue()}")
