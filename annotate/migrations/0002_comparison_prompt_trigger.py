"""Database-level invariant: a pair comparison's candidates belong to the comparison's prompt.

A CHECK constraint cannot look at another table, so this is a trigger (SQLite and PostgreSQL).
"""

from django.db import migrations

SQLITE = [
    """
    CREATE TRIGGER IF NOT EXISTS comparison_candidates_match_prompt_{op}
    BEFORE {op} ON annotate_comparison
    WHEN NEW.kind = 'pair' AND (
        (SELECT prompt_id FROM annotate_candidate WHERE id = NEW.candidate_a_id) IS NOT NEW.prompt_id
        OR (SELECT prompt_id FROM annotate_candidate WHERE id = NEW.candidate_b_id) IS NOT NEW.prompt_id)
    BEGIN SELECT RAISE(ABORT, 'comparison candidates must belong to the comparison prompt'); END;
    """.format(op=op)
    for op in ("INSERT", "UPDATE")
]
SQLITE_DROP = [f"DROP TRIGGER IF EXISTS comparison_candidates_match_prompt_{op}" for op in ("INSERT", "UPDATE")]

POSTGRES = [
    """
    CREATE OR REPLACE FUNCTION annotate_comparison_check_prompt() RETURNS trigger AS $$
    BEGIN
        IF NEW.kind = 'pair' AND (
            (SELECT prompt_id FROM annotate_candidate WHERE id = NEW.candidate_a_id) IS DISTINCT FROM NEW.prompt_id
            OR (SELECT prompt_id FROM annotate_candidate WHERE id = NEW.candidate_b_id) IS DISTINCT FROM NEW.prompt_id)
        THEN
            RAISE EXCEPTION 'comparison candidates must belong to the comparison prompt'
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END;
    $$ LANGUAGE plpgsql;
    """,
    """
    CREATE TRIGGER comparison_candidates_match_prompt
    BEFORE INSERT OR UPDATE ON annotate_comparison
    FOR EACH ROW EXECUTE FUNCTION annotate_comparison_check_prompt();
    """,
]
POSTGRES_DROP = [
    "DROP TRIGGER IF EXISTS comparison_candidates_match_prompt ON annotate_comparison",
    "DROP FUNCTION IF EXISTS annotate_comparison_check_prompt()",
]


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        for sql in statements_by_vendor.get(schema_editor.connection.vendor, []):
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("annotate", "0001_initial")]

    operations = [
        migrations.RunPython(
            _run({"sqlite": SQLITE, "postgresql": POSTGRES}),
            _run({"sqlite": SQLITE_DROP, "postgresql": POSTGRES_DROP}),
        )
    ]
