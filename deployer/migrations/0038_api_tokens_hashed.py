"""API tokens are kept as digests (django-rest-knox) instead of DRF's plain keys: each existing key is carried
over as its digest, so every client keeps working, and the table of plain keys is dropped."""

import hashlib

from django.db import migrations

OLD_TABLE = "authtoken_token"
KEY_PREFIX_LENGTH = 15  # knox's CONSTANTS.TOKEN_KEY_LENGTH: where it looks a token up


def carry_over(apps, schema_editor):  # type: ignore[no-untyped-def]
    connection = schema_editor.connection
    if OLD_TABLE not in connection.introspection.table_names():
        return
    AuthToken = apps.get_model("knox", "AuthToken")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT key, user_id, created FROM {OLD_TABLE}")
        rows = cursor.fetchall()
    for key, user_id, created in rows:
        AuthToken.objects.create(
            digest=hashlib.sha512(key.encode()).hexdigest(),  # knox.crypto.hash_token of a hex key
            token_key=key[:KEY_PREFIX_LENGTH],
            user_id=user_id,
            created=created,
            expiry=None,
        )
    schema_editor.execute(f"DROP TABLE {OLD_TABLE}")


class Migration(migrations.Migration):
    dependencies = [
        ("deployer", "0037_secret_sources"),
        ("knox", "0009_extend_authtoken_field"),
    ]

    operations = [migrations.RunPython(carry_over, migrations.RunPython.noop)]
