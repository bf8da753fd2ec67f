-- index conversations_by_updated_at
CREATE INDEX conversations_by_updated_at ON conversations (updated_at);

-- index idx__sqlite_migrations_migration_set_name
CREATE UNIQUE INDEX "idx__sqlite_migrations_migration_set_name"
    ON "_sqlite_migrations" ("migration_set", "name");

-- index messages_by_conversation
CREATE INDEX messages_by_conversation ON messages (conversation_id, id);

-- index messages_by_parent
CREATE INDEX messages_by_parent ON messages (parent_id);

-- index messages_unfinished
CREATE INDEX messages_unfinished ON messages (id)
    WHERE role = 'assistant' AND finish_reason IS NULL;

-- table _sqlite_migrations
CREATE TABLE "_sqlite_migrations" (
   "id" INTEGER PRIMARY KEY,
   "migration_set" TEXT,
   "name" TEXT,
   "applied_at" TEXT
);

-- table conversations
CREATE TABLE conversations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL,
    created_at TEXT NOT NULL,     -- ISO-8601 UTC
    updated_at TEXT NOT NULL,     -- ISO-8601 UTC; bumped by every new or finished message
    model TEXT,                   -- model file last chosen for this chat; NULL = default
    system_prompt TEXT            -- NULL = use the system prompt from settings
, engine TEXT, settings TEXT, head_id INTEGER);

-- table messages
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
, error TEXT, engine TEXT, reasoning TEXT, reasoning_ms INTEGER, parent_id INTEGER, sources TEXT, tool_calls TEXT);

-- table messages_fts
CREATE VIRTUAL TABLE "messages_fts" USING FTS5 (
    "content",
    tokenize='unicode61 remove_diacritics 2',
    content="messages"
);

-- table messages_fts_config
CREATE TABLE 'messages_fts_config'(k PRIMARY KEY, v) WITHOUT ROWID;

-- table messages_fts_data
CREATE TABLE 'messages_fts_data'(id INTEGER PRIMARY KEY, block BLOB);

-- table messages_fts_docsize
CREATE TABLE 'messages_fts_docsize'(id INTEGER PRIMARY KEY, sz BLOB);

-- table messages_fts_idx
CREATE TABLE 'messages_fts_idx'(segid, term, pgno, PRIMARY KEY(segid, term)) WITHOUT ROWID;

-- table messages_trigram
CREATE VIRTUAL TABLE messages_trigram USING fts5 (
    -- Any substring of three characters or more, in messages_unspaced.
    content, content = 'messages_unspaced', content_rowid = 'id', tokenize = 'trigram'
);

-- table messages_trigram_config
CREATE TABLE 'messages_trigram_config'(k PRIMARY KEY, v) WITHOUT ROWID;

-- table messages_trigram_data
CREATE TABLE 'messages_trigram_data'(id INTEGER PRIMARY KEY, block BLOB);

-- table messages_trigram_docsize
CREATE TABLE 'messages_trigram_docsize'(id INTEGER PRIMARY KEY, sz BLOB);

-- table messages_trigram_idx
CREATE TABLE 'messages_trigram_idx'(segid, term, pgno, PRIMARY KEY(segid, term)) WITHOUT ROWID;

-- table sqlite_sequence
CREATE TABLE sqlite_sequence(name,seq);

-- trigger messages_ad
CREATE TRIGGER "messages_ad" AFTER DELETE ON "messages" BEGIN
  INSERT INTO "messages_fts" ("messages_fts", rowid, "content") VALUES('delete', old.rowid, old."content");
END;

-- trigger messages_ai
CREATE TRIGGER "messages_ai" AFTER INSERT ON "messages" BEGIN
  INSERT INTO "messages_fts" (rowid, "content") VALUES (new.rowid, new."content");
END;

-- trigger messages_au
CREATE TRIGGER "messages_au" AFTER UPDATE ON "messages" BEGIN
  INSERT INTO "messages_fts" ("messages_fts", rowid, "content") VALUES('delete', old.rowid, old."content");
  INSERT INTO "messages_fts" (rowid, "content") VALUES (new.rowid, new."content");
END;

-- trigger messages_trigram_ad
CREATE TRIGGER messages_trigram_ad AFTER DELETE ON messages WHEN length(CAST(old.content AS BLOB)) > length(old.content) AND old.content GLOB '*[぀-ヿ㐀-䶿一-鿿豈-﫿฀-໿က-႟ក-៿]*'
BEGIN
    INSERT INTO messages_trigram (messages_trigram, rowid, content)
        VALUES ('delete', old.id, old.content || '  ');
END;

-- trigger messages_trigram_ai
CREATE TRIGGER messages_trigram_ai AFTER INSERT ON messages WHEN length(CAST(new.content AS BLOB)) > length(new.content) AND new.content GLOB '*[぀-ヿ㐀-䶿一-鿿豈-﫿฀-໿က-႟ក-៿]*'
BEGIN
    INSERT INTO messages_trigram (rowid, content) VALUES (new.id, new.content || '  ');
END;

-- trigger messages_trigram_au
CREATE TRIGGER messages_trigram_au AFTER UPDATE OF content ON messages
BEGIN
    INSERT INTO messages_trigram (messages_trigram, rowid, content)
        SELECT 'delete', old.id, old.content || '  ' WHERE length(CAST(old.content AS BLOB)) > length(old.content) AND old.content GLOB '*[぀-ヿ㐀-䶿一-鿿豈-﫿฀-໿က-႟ក-៿]*';
    INSERT INTO messages_trigram (rowid, content)
        SELECT new.id, new.content || '  ' WHERE length(CAST(new.content AS BLOB)) > length(new.content) AND new.content GLOB '*[぀-ヿ㐀-䶿一-鿿豈-﫿฀-໿က-႟ក-៿]*';
END;

-- view messages_unspaced
CREATE VIEW messages_unspaced AS
    -- The messages written in a script without spaces, as messages_trigram indexes them.
    SELECT id, content || '  ' AS content FROM messages
    WHERE length(CAST(content AS BLOB)) > length(content) AND content GLOB '*[぀-ヿ㐀-䶿一-鿿豈-﫿฀-໿က-႟ក-៿]*';

