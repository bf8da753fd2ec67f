"""The conversation database's schema, as an ordered list of migrations.

``Store`` applies these on every open (sqlite-utils records each applied one in
``_sqlite_migrations``). Never edit a migration that has shipped: add ``m003_...`` instead. After
any ``transform()`` of ``messages`` call ``enable_fts(..., replace=True)`` again, because
transform silently drops the search triggers. tests/conversations/test_storage_schema.sql
snapshots the result.

The CREATE statements are written out in SQL (not ``db[...].create()``) for two reasons:
sqlite-utils cannot declare ``ON DELETE CASCADE`` or CHECK constraints, and SQLite keeps the
comments below in ``sqlite_master``, so the schema documents itself in every user's file.
"""

from __future__ import annotations

import textwrap

from sqlite_utils import Database, Migrations

migrations = Migrations("assistant")

# Every value finish_reason may hold. The first four come from Engine (Completion.finish_reason);
# "interrupted" is written by Store on open for replies a crash or power cut left unfinished.
FINISH_REASONS = ("stop", "length", "cancelled", "error", "interrupted")
ROLES = ("system", "user", "assistant")


@migrations()
def m001_create_conversations_and_messages(db: Database) -> None:
    # AUTOINCREMENT: ids are never reused, so a late checkpoint from a reply whose conversation
    # was deleted cannot land in a newer message that happened to get the same id.
    db.executescript(
        textwrap.dedent(
            """\
        CREATE TABLE conversations (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            title TEXT NOT NULL,
            created_at TEXT NOT NULL,     -- ISO-8601 UTC
            updated_at TEXT NOT NULL,     -- ISO-8601 UTC; bumped by every new or finished message
            model TEXT,                   -- model file last chosen for this chat; NULL = default
            system_prompt TEXT            -- NULL = use the system prompt from settings
        );
        CREATE INDEX conversations_by_updated_at ON conversations (updated_at);
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            conversation_id INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
            content TEXT NOT NULL,        -- a streaming reply holds its last checkpoint
            created_at TEXT NOT NULL,     -- ISO-8601 UTC
            -- The columns below describe assistant replies; user and system rows leave them NULL.
            finished_at TEXT,             -- ISO-8601 UTC; NULL while streaming or if interrupted
            -- NULL while the reply streams; stop|length|cancelled|error from the engine;
            -- 'interrupted' = found unfinished on open (the app crashed mid-reply).
            finish_reason TEXT CHECK (
                finish_reason IN ('stop', 'length', 'cancelled', 'error', 'interrupted')
            ),
            prompt_tokens INTEGER,        -- tokens in the prompt the reply was generated from
            completion_tokens INTEGER,    -- tokens generated for this reply
            duration_ms INTEGER,          -- from the start of prompt processing to the last token
            ttft_ms INTEGER,              -- time to first token
            model_file TEXT               -- file name of the model that wrote this reply
        );
        CREATE INDEX messages_by_conversation ON messages (conversation_id, id);
        -- Crash recovery on open looks for unfinished replies; this keeps that look instant.
        CREATE INDEX messages_unfinished ON messages (id)
            WHERE role = 'assistant' AND finish_reason IS NULL;
        """
        )
    )


@migrations()
def m002_enable_message_search(db: Database) -> None:
    # External-content FTS5 keyed on messages.rowid (= messages.id), kept current by triggers.
    # remove_diacritics 2: "cafe" finds "café".
    db.table("messages").enable_fts(
        ["content"], create_triggers=True, tokenize="unicode61 remove_diacritics 2"
    )


@migrations()
def m003_add_message_error(db: Database) -> None:
    # Why a reply ended with finish_reason 'error', as the sentence the user was shown (the
    # engine crashed, a remote server refused...). NULL for every other reply.
    db.execute("ALTER TABLE messages ADD COLUMN error TEXT")


@migrations()
def m004_add_engine_and_reasoning(db: Database) -> None:
    # Which engine wrote a reply, and which the conversation uses now: the name of a remote
    # engine from Settings, NULL for the engine on this machine. model / model_file then hold
    # that engine's model id.
    db.execute("ALTER TABLE conversations ADD COLUMN engine TEXT")
    db.execute("ALTER TABLE messages ADD COLUMN engine TEXT")
    # A reply's reasoning (a remote engine's reasoning_content), kept apart from its answer:
    # never sent back to a model, exported marked as such. NULL when there was none.
    db.execute("ALTER TABLE messages ADD COLUMN reasoning TEXT")


@migrations()
def m005_add_reasoning_time(db: Database) -> None:
    # How long the model thought before it answered, in ms ("Thought for 4 s" above the
    # answer). NULL when it did not think (reasoning is NULL) or the time is unknown.
    db.execute("ALTER TABLE messages ADD COLUMN reasoning_ms INTEGER")


@migrations()
def m006_add_conversation_settings(db: Database) -> None:
    # A conversation's own generation settings (chat_settings.ChatSettings) as a JSON object of
    # the fields it chose: temperature, top_p, top_k, min_p, repeat_penalty, max_tokens, n_ctx,
    # seed. A field left out, or NULL for the whole column, follows the app's defaults.
    db.execute("ALTER TABLE conversations ADD COLUMN settings TEXT")


@migrations()
def m007_messages_as_a_tree(db: Database) -> None:
    # Versions and branches: each message follows its parent (NULL: the first of its chat).
    # Messages with the same parent are versions of one turn (a regenerated reply, an edited
    # question); the branch shown is the path from the first message to the conversation's
    # head_id. Deleting a message deletes what follows it on every branch: Store does that
    # with a recursive query. (Not ON DELETE CASCADE: every message is the parent of the next,
    # and SQLite stops a cascade 1,000 levels deep, so a long chat could not be deleted.)
    db.execute("ALTER TABLE messages ADD COLUMN parent_id INTEGER")
    db.execute("ALTER TABLE conversations ADD COLUMN head_id INTEGER")
    # The chats so far were one line each: every message follows the one before it. In one
    # pass, and without the search index's update trigger, which fires for any column and would
    # index every message again (a million messages: a minute instead of seconds).
    trigger = db.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'messages_au'"
    ).fetchone()
    if trigger is not None:
        db.execute("DROP TRIGGER messages_au")
    db.execute(
        "UPDATE messages SET parent_id = p.previous FROM (SELECT id, lag(id) OVER "
        "(PARTITION BY conversation_id ORDER BY id) AS previous FROM messages) AS p "
        "WHERE messages.id = p.id"
    )
    if trigger is not None:
        db.execute(trigger[0])
    db.execute("CREATE INDEX messages_by_parent ON messages (parent_id)")  # built once, after
    db.execute(
        "UPDATE conversations SET head_id = "
        "(SELECT max(m.id) FROM messages m WHERE m.conversation_id = conversations.id)"
    )


# Scripts written without spaces between words (Han, Hiragana, Katakana, Thai, Lao, Myanmar,
# Khmer) as a GLOB class; search.UNSPACED_SCRIPT is the same as a regex.
_UNSPACED = (
    "[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff]"
)
# Those characters are all beyond ASCII: comparing bytes to characters first skips the GLOB for
# ASCII text (0.5 s instead of 30 s over a million English messages).
_HAS_UNSPACED = "length(CAST({0} AS BLOB)) > length({0}) AND {0} GLOB '*" + _UNSPACED + "*'"


@migrations()
def m008_index_unspaced_scripts_by_trigram(db: Database) -> None:
    # Chinese, Japanese, Thai... put no spaces between words, so the word index (m002) sees a
    # whole sentence as one word. The messages written in them are also indexed by trigram,
    # where a query finds any substring of three characters or more. Each is indexed with two
    # spaces after it, so that a word of one or two characters at its end still begins a
    # trigram. The view is the index's content: what 'rebuild' and 'integrity-check' read.
    new, old = _HAS_UNSPACED.format("new.content"), _HAS_UNSPACED.format("old.content")
    db.executescript(
        textwrap.dedent(
            f"""\
        CREATE VIEW messages_unspaced AS
            -- The messages written in a script without spaces, as messages_trigram indexes them.
            SELECT id, content || '  ' AS content FROM messages
            WHERE {_HAS_UNSPACED.format("content")};
        CREATE VIRTUAL TABLE messages_trigram USING fts5 (
            -- Any substring of three characters or more, in messages_unspaced.
            content, content = 'messages_unspaced', content_rowid = 'id', tokenize = 'trigram'
        );
        CREATE TRIGGER messages_trigram_ai AFTER INSERT ON messages WHEN {new}
        BEGIN
            INSERT INTO messages_trigram (rowid, content) VALUES (new.id, new.content || '  ');
        END;
        CREATE TRIGGER messages_trigram_ad AFTER DELETE ON messages WHEN {old}
        BEGIN
            INSERT INTO messages_trigram (messages_trigram, rowid, content)
                VALUES ('delete', old.id, old.content || '  ');
        END;
        CREATE TRIGGER messages_trigram_au AFTER UPDATE OF content ON messages
        BEGIN
            INSERT INTO messages_trigram (messages_trigram, rowid, content)
                SELECT 'delete', old.id, old.content || '  ' WHERE {old};
            INSERT INTO messages_trigram (rowid, content)
                SELECT new.id, new.content || '  ' WHERE {new};
        END;
        INSERT INTO messages_trigram (messages_trigram) VALUES ('rebuild');
        """
        )
    )


@migrations()
def m009_add_message_sources(db: Database) -> None:
    # The passages of the person's documents a reply was given (documents/), as a JSON list of
    # objects: collection, path, where ("page 3", "lines 10-24"), page, line_start, line_end,
    # text. They are shown under the reply, open the file, and are exported with it. NULL when
    # the reply used no documents.
    db.execute("ALTER TABLE messages ADD COLUMN sources TEXT")


@migrations()
def m010_add_message_tool_calls(db: Database) -> None:
    # The tool calls (MCP) made while writing a reply, as a JSON list of objects: tool
    # ("server/name"), arguments (JSON text), status (ran, denied, failed), result (the text
    # the tool gave back, cut to a length). Shown folded under the reply and exported with it.
    # NULL when it called none.
    db.execute("ALTER TABLE messages ADD COLUMN tool_calls TEXT")
