"""Words in prompts, searchable fast: FTS5 on SQLite, a GIN index on PostgreSQL."""

from django.db import migrations

FTS = "jobs_videojob_fts"

SQLITE_FORWARD = [
    # An external-content table: it stores the index only, the prompts stay in jobs_videojob.
    f"CREATE VIRTUAL TABLE {FTS} USING fts5(prompt, content='jobs_videojob', content_rowid='id', "
    "tokenize='porter unicode61')",
    f"""CREATE TRIGGER {FTS}_insert AFTER INSERT ON jobs_videojob BEGIN
        INSERT INTO {FTS}(rowid, prompt) VALUES (new.id, new.prompt);
    END""",
    f"""CREATE TRIGGER {FTS}_delete AFTER DELETE ON jobs_videojob BEGIN
        INSERT INTO {FTS}({FTS}, rowid, prompt) VALUES ('delete', old.id, old.prompt);
    END""",
    f"""CREATE TRIGGER {FTS}_update AFTER UPDATE OF prompt ON jobs_videojob BEGIN
        INSERT INTO {FTS}({FTS}, rowid, prompt) VALUES ('delete', old.id, old.prompt);
        INSERT INTO {FTS}(rowid, prompt) VALUES (new.id, new.prompt);
    END""",
    f"INSERT INTO {FTS}({FTS}) VALUES ('rebuild')",
]
SQLITE_BACKWARD = [
    f"DROP TRIGGER IF EXISTS {FTS}_update",
    f"DROP TRIGGER IF EXISTS {FTS}_delete",
    f"DROP TRIGGER IF EXISTS {FTS}_insert",
    f"DROP TABLE IF EXISTS {FTS}",
]
# A stored tsvector column, not an expression index: reading it costs nothing per row,
# so a common word is found by walking the newest rows first; a rare one through the GIN
# index. Django does not know the column; jobs.models.VideoJobQuerySet.search names it.
POSTGRES_FORWARD = [
    "ALTER TABLE jobs_videojob ADD COLUMN prompt_search tsvector "
    "GENERATED ALWAYS AS (to_tsvector('english'::regconfig, COALESCE(prompt, ''))) STORED",
    "CREATE INDEX job_prompt_search ON jobs_videojob USING gin (prompt_search)",
]
POSTGRES_BACKWARD = ["ALTER TABLE jobs_videojob DROP COLUMN IF EXISTS prompt_search"]


def run(statements_by_vendor):
    def operation(apps, schema_editor):
        for statement in statements_by_vendor.get(schema_editor.connection.vendor, []):
            schema_editor.execute(statement)

    return operation


class Migration(migrations.Migration):
    dependencies = [("jobs", "0007_variants_eta")]

    operations = [
        migrations.RunPython(
            run({"sqlite": SQLITE_FORWARD, "postgresql": POSTGRES_FORWARD}),
            run({"sqlite": SQLITE_BACKWARD, "postgresql": POSTGRES_BACKWARD}),
        ),
    ]
