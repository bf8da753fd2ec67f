"""The exact schema a fresh database gets, compared with the snapshot in test_storage_schema.sql.

A schema change must come as a new migration (assistant/conversations/migrations.py) plus an
update of the snapshot, so that both show up in review. To regenerate it after adding a migration:
    ASSISTANT_UPDATE_SCHEMA_SNAPSHOT=1 python -m pytest tests/conversations/test_storage_schema.py
"""

from __future__ import annotations

import os
from pathlib import Path

from assistant.conversations.storage import Store

SNAPSHOT = Path(__file__).with_name("test_storage_schema.sql")


def dump_schema(store: Store) -> str:
    rows = store.db.conn.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY type, name"
    )
    return "".join(f"-- {kind} {name}\n{sql};\n\n" for kind, name, sql in rows)


def test_schema_matches_snapshot(tmp_path: Path) -> None:
    with Store(tmp_path / "fresh.db") as store:
        schema = dump_schema(store)
    if os.environ.get("ASSISTANT_UPDATE_SCHEMA_SNAPSHOT"):
        SNAPSHOT.write_text(schema, encoding="utf-8")
    assert schema == SNAPSHOT.read_text(encoding="utf-8")


def test_reopened_database_has_the_same_schema(tmp_path: Path) -> None:
    path = tmp_path / "reopened.db"
    Store(path).close()
    with Store(path) as store:
        assert dump_schema(store) == SNAPSHOT.read_text(encoding="utf-8")


def test_finish_reasons_are_the_databases_check_strings(tmp_path: Path) -> None:
    from assistant.conversations.migrations import FINISH_REASONS
    from assistant.records import FinishReason

    assert tuple(FinishReason) == FINISH_REASONS
    with Store(tmp_path / "check.db") as store:
        sql = store.db.conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'messages'"
        ).fetchone()[0]
    check = sql[sql.index("finish_reason IN (") :].split(")")[0]
    assert [r.strip(" '\n") for r in check.removeprefix("finish_reason IN (").split(",")] == [
        str(r) for r in FinishReason
    ]
