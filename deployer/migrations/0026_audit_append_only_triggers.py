"""The database itself refuses to change or delete audit entries (deployer/audit.py says why and the one way
round it). Triggers on UPDATE name every column but actor_id: unlinking a deleted user (SET NULL) stays
possible, pointing an entry at another user does not. A migration that adds a column to AuditEntry must add
it to COLUMNS here (a test changes every column with raw SQL); on SQLite, one that remakes the table drops
the triggers and must create them again."""

from django.db import migrations

COLUMNS = [
    "id", "at", "actor_name", "action", "service", "environment", "deploy_id", "detail", "team", "ref", "sha",
    "previous_sha", "trigger", "outcome", "duration_seconds",
]
TABLE = "deployer_auditentry"
_COLS = ", ".join(f'"{c}"' for c in COLUMNS)

POSTGRES = f"""
CREATE OR REPLACE FUNCTION deployer_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('gantry.audit_erasure', true) = 'on' THEN
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'the audit log is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER deployer_auditentry_no_update BEFORE UPDATE OF {_COLS} ON {TABLE}
  FOR EACH ROW EXECUTE FUNCTION deployer_audit_append_only();
CREATE TRIGGER deployer_auditentry_no_repoint BEFORE UPDATE OF "actor_id" ON {TABLE}
  FOR EACH ROW WHEN (NEW.actor_id IS NOT NULL) EXECUTE FUNCTION deployer_audit_append_only();
CREATE TRIGGER deployer_auditentry_no_delete BEFORE DELETE ON {TABLE}
  FOR EACH ROW EXECUTE FUNCTION deployer_audit_append_only();
CREATE TRIGGER deployer_auditentry_no_truncate BEFORE TRUNCATE ON {TABLE}
  FOR EACH STATEMENT EXECUTE FUNCTION deployer_audit_append_only();
"""
POSTGRES_DROP = f"""
DROP TRIGGER IF EXISTS deployer_auditentry_no_update ON {TABLE};
DROP TRIGGER IF EXISTS deployer_auditentry_no_repoint ON {TABLE};
DROP TRIGGER IF EXISTS deployer_auditentry_no_delete ON {TABLE};
DROP TRIGGER IF EXISTS deployer_auditentry_no_truncate ON {TABLE};
DROP FUNCTION IF EXISTS deployer_audit_append_only();
"""
SQLITE = [
    f"""CREATE TRIGGER deployer_auditentry_no_update BEFORE UPDATE OF {_COLS} ON {TABLE}
        WHEN NOT gantry_audit_erasure()
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: UPDATE refused'); END""",
    f"""CREATE TRIGGER deployer_auditentry_no_repoint BEFORE UPDATE OF "actor_id" ON {TABLE}
        WHEN NEW.actor_id IS NOT NULL AND NOT gantry_audit_erasure()
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: UPDATE refused'); END""",
    f"""CREATE TRIGGER deployer_auditentry_no_delete BEFORE DELETE ON {TABLE}
        WHEN NOT gantry_audit_erasure()
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: DELETE refused'); END""",
]
SQLITE_DROP = [
    f"DROP TRIGGER IF EXISTS deployer_auditentry_{name}" for name in ("no_update", "no_repoint", "no_delete")
]


def install(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRES, params=None)  # its % are plpgsql's, not placeholders
    elif vendor == "sqlite":
        for statement in SQLITE:
            schema_editor.execute(statement)


def remove(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRES_DROP)
    elif vendor == "sqlite":
        for statement in SQLITE_DROP:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("deployer", "0025_system_identity")]

    operations = [migrations.RunPython(install, remove)]
