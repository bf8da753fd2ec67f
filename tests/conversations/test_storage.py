"""Store against real SQLite files: CRUD, streaming replies, search, export, and failures."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant import errors, paths
from assistant.conversations.export import ExportFormat
from assistant.conversations.export import conversation_text as as_text
from assistant.conversations.migrations import migrations
from assistant.conversations.search import (
    HIGHLIGHT_END,
    HIGHLIGHT_START,
    format_snippet,
    split_snippet,
)
from assistant.conversations.storage import Store

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "assistant.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    s = Store(db_path, busy_timeout=0.2)
    yield s
    s.close()


def _chat(store: Store, title: str = "Chat", turns: tuple[tuple[str, str], ...] = ()) -> int:
    conversation = store.create_conversation(title)
    for question, answer in turns:
        store.add_message(conversation.id, "user", question)
        reply = store.start_reply(conversation.id, "tiny.gguf")
        store.finish_reply(reply.id, answer, "stop")
    return conversation.id


def _run_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


# -- conversations ----------------------------------------------------------------------------


def test_default_path_is_in_assistant_home(assistant_home: Path) -> None:
    with Store() as store:
        store.create_conversation()
    assert paths.database_path().is_relative_to(assistant_home)
    assert paths.database_path().exists()


def test_create_list_get_rename(store: Store) -> None:
    first = store.create_conversation("First", model="a.gguf", system_prompt="Be brief.")
    second = store.create_conversation()
    assert second.title == "New chat"
    assert store.conversation(first.id) == first
    assert first.created_at.endswith("+00:00") and first.updated_at == first.created_at
    assert [c.id for c in store.conversations()] == [second.id, first.id]

    store.rename_conversation(first.id, "  Renamed  ")
    store.set_conversation_model(first.id, "b.gguf")
    got = store.conversation(first.id)
    assert (got.title, got.model, got.system_prompt) == ("Renamed", "b.gguf", "Be brief.")
    store.rename_conversation(first.id, "   ")
    assert store.conversation(first.id).title == "New chat"

    with pytest.raises(errors.ConversationNotFound):
        store.conversation(999)
    with pytest.raises(errors.ConversationNotFound):
        store.rename_conversation(999, "x")


def test_new_message_moves_conversation_to_top(store: Store) -> None:
    older = store.create_conversation("older")
    newer = store.create_conversation("newer")
    assert [c.id for c in store.conversations()] == [newer.id, older.id]
    message = store.add_message(older.id, "user", "hi")
    assert [c.id for c in store.conversations()] == [older.id, newer.id]
    assert store.conversation(older.id).updated_at == message.created_at
    # Renaming is not activity: the order stays.
    store.rename_conversation(newer.id, "renamed")
    assert [c.id for c in store.conversations()] == [older.id, newer.id]


def test_delete_conversation_cascades_and_clears_search(store: Store) -> None:
    doomed = _chat(store, "doomed", (("tell me about zebras", "zebras have stripes"),))
    kept = _chat(store, "kept", (("and horses?", "horses have no stripes"),))
    assert {h.conversation_id for h in store.search("stripes")} == {doomed, kept}

    store.delete_conversation(doomed)
    store.delete_conversation(doomed)  # already gone is fine
    assert [c.id for c in store.conversations()] == [kept]
    assert store.db.conn.execute(
        "SELECT count(*) FROM messages WHERE conversation_id = ?", (doomed,)
    ).fetchone() == (0,)
    assert [h.conversation_id for h in store.search("stripes")] == [kept]
    assert store.search("zebras") == []
    with pytest.raises(errors.ConversationNotFound):
        store.messages(doomed)
    assert store.integrity_check()


# -- messages and replies ---------------------------------------------------------------------


def test_messages_oldest_first_and_roles(store: Store) -> None:
    cid = store.create_conversation().id
    store.add_message(cid, "system", "You are helpful.")
    store.add_message(cid, "user", "one")
    store.add_message(cid, "assistant", "two")
    messages = store.messages(cid)
    assert [(m.role, m.content) for m in messages] == [
        ("system", "You are helpful."), ("user", "one"), ("assistant", "two"),
    ]  # fmt: skip
    assert [m.id for m in messages] == sorted(m.id for m in messages)
    assert messages[1].finish_reason is None and messages[1].finished_at is None
    with pytest.raises(ValueError):
        store.add_message(cid, "robot", "beep")


def test_add_message_to_missing_conversation(store: Store) -> None:
    with pytest.raises(errors.ConversationNotFound):
        store.add_message(12345, "user", "hello?")
    with pytest.raises(errors.ConversationNotFound):
        store.start_reply(12345, None)
    assert store.db.conn.execute("SELECT count(*) FROM messages").fetchone() == (0,)


def test_streaming_reply_checkpoint_and_finish(store: Store) -> None:
    cid = store.create_conversation().id
    question = store.add_message(cid, "user", "Count to three")
    reply = store.start_reply(cid, "tiny.gguf")
    assert (reply.role, reply.content, reply.finish_reason, reply.model_file) == (
        "assistant", "", None, "tiny.gguf",
    )  # fmt: skip
    assert store.conversation(cid).updated_at == reply.created_at

    store.checkpoint_reply(reply.id, "One, two")
    partial = store.messages(cid)[-1]
    assert (partial.content, partial.finish_reason, partial.finished_at) == ("One, two", None, None)

    done = store.finish_reply(
        reply.id, "One, two, three.", "length",
        prompt_tokens=12, completion_tokens=5, duration_ms=830, ttft_ms=95,
    )  # fmt: skip
    assert done == store.message(reply.id)
    assert (done.content, done.finish_reason) == ("One, two, three.", "length")
    assert (done.prompt_tokens, done.completion_tokens, done.duration_ms, done.ttft_ms) == (
        12, 5, 830, 95,
    )  # fmt: skip
    assert done.finished_at is not None and done.finished_at >= done.created_at
    assert store.conversation(cid).updated_at == done.finished_at

    # A checkpoint arriving after the finish must not overwrite the final text.
    store.checkpoint_reply(reply.id, "One, two")
    assert store.message(reply.id).content == "One, two, three."
    # A checkpoint for a reply whose conversation was deleted is ignored.
    store.checkpoint_reply(99999, "lost")
    assert [m.id for m in store.messages(cid)] == [question.id, reply.id]

    with pytest.raises(ValueError):
        store.finish_reply(reply.id, "x", "interrupted")
    with pytest.raises(errors.MessageNotFound):
        store.finish_reply(99999, "x", "stop")
    assert isinstance(errors.MessageNotFound("x"), errors.StorageError)


def test_edit_and_delete_messages_from(store: Store) -> None:
    cid = _chat(store, turns=(("q1", "a1"), ("q2", "a2"), ("q3", "a3")))
    other = _chat(store, turns=(("other q", "other a"),))
    ids = [m.id for m in store.messages(cid)]
    store.edit_message(ids[2], "q2 edited")
    assert store.messages(cid)[2].content == "q2 edited"
    assert store.search("edited")[0].message_id == ids[2]

    store.delete_messages_from(ids[2])
    assert [m.content for m in store.messages(cid)] == ["q1", "a1"]
    assert len(store.messages(other)) == 2
    store.delete_messages_from(ids[2])  # already gone is fine
    with pytest.raises(errors.MessageNotFound):
        store.edit_message(ids[3], "gone")
    assert store.search("a3") == []


def test_ids_are_never_reused(store: Store) -> None:
    cid = store.create_conversation().id
    last = store.start_reply(cid, None)
    store.delete_messages_from(last.id)
    # A stale checkpoint for the deleted reply must not land in the next message.
    newer = store.add_message(cid, "user", "new question")
    assert newer.id > last.id
    store.checkpoint_reply(last.id, "stale")
    assert store.message(newer.id).content == "new question"


def test_unfinished_reply_marked_interrupted_after_crash(db_path: Path) -> None:
    # A real crash: the process dies mid-reply without closing the database.
    result = _run_python(
        f"""
        import os
        from assistant.conversations.storage import Store
        store = Store({str(db_path)!r})
        cid = store.create_conversation("crashy").id
        store.add_message(cid, "user", "write a long story")
        reply = store.start_reply(cid, "tiny.gguf")
        store.checkpoint_reply(reply.id, "Once upon a time")
        os._exit(3)
        """
    )
    assert result.returncode == 3, result.stderr

    # A secondary Store (recover=False) leaves a possibly still-streaming reply alone.
    with Store(db_path, recover=False) as secondary:
        assert secondary.messages(1)[-1].finish_reason is None

    with Store(db_path) as store:
        question, reply = store.messages(1)
        assert (question.content, question.finish_reason) == ("write a long story", None)
        assert (reply.content, reply.finish_reason) == ("Once upon a time", "interrupted")
        assert reply.finished_at is None and reply.model_file == "tiny.gguf"
        assert " · interrupted" in as_text(store, 1, ExportFormat.MARKDOWN)
        # The user can still regenerate over it.
        store.delete_messages_from(reply.id)
        again = store.start_reply(1, "tiny.gguf")
        assert store.finish_reply(again.id, "The end.", "stop").finish_reason == "stop"


# -- search -----------------------------------------------------------------------------------


def test_search_finds_words_from_old_replies_across_conversations(store: Store) -> None:
    old = _chat(store, "Trip planning", (("Where to go?", "Visit the Kunsthistorisches museum"),))
    for i in range(30):
        _chat(store, f"filler {i}", ((f"question {i}", f"answer number {i}"),))
    store.add_message(old, "user", "Thanks")  # the old chat moves on; its reply stays findable

    hits = store.search("kunsthistorisches")
    assert len(hits) == 1
    hit = hits[0]
    assert (hit.conversation_id, hit.title, hit.role) == (old, "Trip planning", "assistant")
    assert HIGHLIGHT_START + "Kunsthistorisches" + HIGHLIGHT_END in hit.snippet
    assert ("Kunsthistorisches", True) in split_snippet(hit.snippet)
    assert "".join(text for text, _ in split_snippet(hit.snippet)) == (
        "Visit the Kunsthistorisches museum"
    )

    assert len(store.search("answer")) == 30
    assert len(store.search("answer", limit=5)) == 5
    assert store.search("answer", limit=0) == []
    assert [h.title for h in store.search("number 7")] == ["filler 7"]
    assert format_snippet(hit.snippet) == "Visit the [Kunsthistorisches] museum"
    assert store.search("kunsthist")  # the last word matches as a prefix while typing


def test_search_lists_the_newest_messages_first_and_completes_words_being_typed(
    store: Store,
) -> None:
    cid = _chat(store, "Notes", (("about lighthouses", "lighthouse keepers"),))
    ids = [store.add_message(cid, "user", f"lighthouse note {i}").id for i in range(5)]
    hits = store.search("lighthouse", limit=3)
    # Newest first, through FTS5's rowid order: a LIMIT stops it early, whatever matches.
    assert [h.message_id for h in hits] == ids[::-1][:3]
    # Not yet a whole word: the prefix query finds "lighthouses" and "lighthouse" alike.
    typed = store.search("lighthou")
    assert len(typed) == 7 and typed[0].message_id == ids[-1]
    # A whole word and the longer words it begins, newest first, each message once.
    both = store.search("lighthouse")
    assert len(both) == 7 and len({h.message_id for h in both}) == 7
    assert [h.message_id for h in both] == sorted((h.message_id for h in both), reverse=True)


def test_search_sees_checkpoints_and_final_text(store: Store) -> None:
    cid = store.create_conversation().id
    reply = store.start_reply(cid, None)
    store.checkpoint_reply(reply.id, "draft aardvark")
    assert [h.message_id for h in store.search("aardvark")] == [reply.id]
    store.finish_reply(reply.id, "final pangolin", "stop")
    assert store.search("aardvark") == []
    assert [h.message_id for h in store.search("pangolin")] == [reply.id]


@pytest.mark.parametrize(
    "query",
    ['"', '""', '"""', "AND", "OR", "NOT", "NEAR", "NEAR(a b)", "*", "**", "a*b", "^", "-",
     "+", "(", ")", "{a b}", "content:x", "col:", ":", "'", "' OR 1=1 --", "a\"b", "\\",
     "\x00", "x\x00\"", "", "   ", "\t\n", "🦀", "日本語", "ü", "AND AND", "a AND", "NOT x"],
)  # fmt: skip
def test_search_odd_input_never_raises(store: Store, query: str) -> None:
    _chat(store, turns=(('AND OR NOT * " rust 🦀 日本語 über', "ok"),))
    assert isinstance(store.search(query), list)


def test_search_operators_are_literal_and_unicode_works(store: Store) -> None:
    cid = _chat(store, turns=(("cats AND dogs", "Ferris the crab says über café"),))
    assert [h.conversation_id for h in store.search("AND")] == [cid]
    assert store.search("cats NOT dogs") == []  # NOT is a word here, and no message has it
    assert store.search("über")
    assert store.search("cafe")  # diacritics folded
    assert store.search('"Ferris the crab"')  # a quoted phrase stays a phrase
    assert store.search("") == []


# -- export -----------------------------------------------------------------------------------


def test_an_empty_reply_says_so_in_its_footer_and_export(store: Store) -> None:
    from assistant.conversations.export import describe_message

    conversation = store.create_conversation("Quiet", model="tiny.gguf")
    store.add_message(conversation.id, "user", "Once upon a time")
    reply = store.start_reply(conversation.id, "tiny.gguf")
    store.finish_reply(reply.id, "", "stop", completion_tokens=0)
    empty = store.message(reply.id)
    assert "no text: the model ended its reply without any text" in describe_message(empty)
    assert "no text" in as_text(store, conversation.id, ExportFormat.MARKDOWN)
    stopped = store.start_reply(conversation.id, "tiny.gguf")
    store.finish_reply(stopped.id, "", "cancelled")  # the person stopped it: nothing to explain
    assert "no text" not in describe_message(store.message(stopped.id))


def test_export_markdown_and_json(store: Store) -> None:
    conversation = store.create_conversation(
        "Export me", model="tiny.gguf", system_prompt="Be kind."
    )
    store.add_message(conversation.id, "user", "Hello there")
    reply = store.start_reply(conversation.id, "tiny.gguf")
    store.finish_reply(reply.id, "General Kenobi!", "stop", completion_tokens=4, duration_ms=1500)

    markdown = as_text(store, conversation.id, ExportFormat.MARKDOWN)
    assert markdown.startswith("# Export me\n")
    assert "- Model: tiny.gguf" in markdown and "- System prompt: Be kind." in markdown
    assert (
        markdown.index("## User")
        < markdown.index("Hello there")
        < markdown.index("## Assistant")
        < markdown.index("General Kenobi!")
    )
    assert "*tiny.gguf · " in markdown and "4 tokens" in markdown and "1.5 s" in markdown

    data = json.loads(as_text(store, conversation.id, ExportFormat.JSON))
    assert data["conversation"]["title"] == "Export me"
    assert data["conversation"]["system_prompt"] == "Be kind."
    assert [m["role"] for m in data["messages"]] == ["user", "assistant"]
    last = data["messages"][-1]
    assert last["content"] == "General Kenobi!" and last["finish_reason"] == "stop"
    assert set(last) >= {"finished_at", "prompt_tokens", "completion_tokens", "duration_ms",
                         "ttft_ms", "model_file", "created_at"}  # fmt: skip
    with pytest.raises(errors.ConversationNotFound):
        json.loads(as_text(store, 999, ExportFormat.JSON))


# -- opening, migrations, integrity ------------------------------------------------------------


def test_reopen_is_idempotent_and_keeps_data(db_path: Path) -> None:
    with Store(db_path) as store:
        cid = _chat(store, turns=(("persist?", "yes"),))
        schema = store.db.conn.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    for _ in range(2):
        with Store(db_path) as store:
            applied = [m.name for m in migrations.applied(store.db)]
            assert migrations.pending(store.db) == []
            assert applied == ["m001_create_conversations_and_messages",
                               "m002_enable_message_search",
                               "m003_add_message_error",
                               "m004_add_engine_and_reasoning",
                               "m005_add_reasoning_time",
                               "m006_add_conversation_settings",
                               "m007_messages_as_a_tree",
                               "m008_index_unspaced_scripts_by_trigram",
                               "m009_add_message_sources",
                               "m010_add_message_tool_calls"]  # fmt: skip
            assert (
                store.db.conn.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
                == schema
            )
            assert [m.content for m in store.messages(cid)] == ["persist?", "yes"]
            assert store.search("persist")
            assert store.db.journal_mode == "wal"
            assert store.db.conn.execute("PRAGMA foreign_keys").fetchone() == (1,)


def test_integrity_check_catches_a_stale_search_index(store: Store) -> None:
    _chat(store, turns=(("fine", "fine"),))
    assert store.integrity_check()
    # Bypass the index (as a transform() that dropped the triggers would) to make it stale.
    store.db.conn.execute("DROP TRIGGER messages_ai")
    store.db.conn.execute(
        "INSERT INTO messages (conversation_id, role, content, created_at) "
        "VALUES (1, 'user', 'unindexed', '2024-01-01T00:00:00+00:00')"
    )
    store.db.conn.commit()
    assert store.integrity_check() is False


# -- failures ---------------------------------------------------------------------------------


def test_not_a_database_is_reported_and_left_untouched(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    original = b"These are my notes, not a database.\n" * 200
    db_path.write_bytes(original)
    with pytest.raises(errors.StorageError) as caught:
        Store(db_path)
    assert type(caught.value) is errors.StorageError
    assert str(db_path) in str(caught.value) and "not" in str(caught.value)
    assert db_path.read_bytes() == original
    assert sorted(p.name for p in db_path.parent.iterdir()) == [db_path.name]


def test_locked_database_raises_and_store_recovers(store: Store, db_path: Path) -> None:
    cid = _chat(store, turns=(("before", "lock"),))
    other = sqlite3.connect(db_path, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        with pytest.raises(errors.DatabaseLocked) as caught:
            store.add_message(cid, "user", "during lock")
        assert str(db_path) in str(caught.value)
        with pytest.raises(errors.DatabaseLocked):
            store.create_conversation("during lock")
        # WAL readers are not blocked, and opening needs no write lock when nothing is pending.
        assert len(store.messages(cid)) == 2
        with Store(db_path, busy_timeout=0.2) as reader:
            assert len(reader.conversations()) == 1
    finally:
        other.execute("ROLLBACK")
        other.close()
    store.add_message(cid, "user", "after lock")
    assert [m.content for m in store.messages(cid)] == ["before", "lock", "after lock"]
    assert len(store.conversations()) == 1
    assert store.integrity_check()


def test_disk_full_raises_and_loses_nothing(store: Store) -> None:
    cid = _chat(store, turns=(("keep", "me"),))
    reply = store.start_reply(cid, None)
    store.checkpoint_reply(reply.id, "partial reply")
    conn = store.db.conn
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")  # the "disk" is now exactly full
    big = "lorem ipsum dolor " * 50_000

    with pytest.raises(errors.DiskFull) as caught:
        store.add_message(cid, "user", big)
    assert str(store.path) in str(caught.value)
    with pytest.raises(errors.DiskFull):
        store.finish_reply(reply.id, big, "stop")
    assert not conn.in_transaction
    assert [(m.content, m.finish_reason) for m in store.messages(cid)] == [
        ("keep", None), ("me", "stop"), ("partial reply", None),
    ]  # fmt: skip
    assert store.search("lorem") == []

    conn.execute("PRAGMA max_page_count = 1073741823")  # space freed
    store.finish_reply(reply.id, "finished after all", "stop")
    assert store.messages(cid)[-1].content == "finished after all"
    assert store.integrity_check()


def test_database_turned_read_only_raises_and_reads_still_work(store: Store) -> None:
    cid = _chat(store, turns=(("read", "only"),))
    # query_only makes SQLite refuse writes exactly as for a read-only file (SQLITE_READONLY),
    # which chmod cannot do for root, as these tests often run.
    store.db.conn.execute("PRAGMA query_only = ON")
    with pytest.raises(errors.DatabaseReadOnly) as caught:
        store.add_message(cid, "user", "lost?")
    assert str(store.path) in str(caught.value)
    with pytest.raises(errors.DatabaseReadOnly):
        store.delete_conversation(cid)
    assert [m.content for m in store.messages(cid)] == ["read", "only"]
    store.db.conn.execute("PRAGMA query_only = OFF")
    store.add_message(cid, "user", "writable again")
    assert len(store.messages(cid)) == 3


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder outside tmp_path (whose parents are private to root) that nobody can reach."""
    folder = Path(tempfile.mkdtemp(prefix="assistant-storage-"))
    folder.chmod(0o755)
    yield folder
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    shutil.rmtree(folder)


_OPEN_AND_REPORT = """
    import ctypes, os, sys
    from assistant import errors
    from assistant.conversations.storage import Store
    path, as_nobody, warm_up = sys.argv[1], sys.argv[2] == "1", sys.argv[3]
    # Load everything (sqlite-utils plugins included) while the interpreter's files, which may
    # sit under a folder only root can read, are still reachable.
    Store(warm_up).close()
    if as_nobody:
        # The filesystem ids decide permission checks; switching them from 0 also drops
        # CAP_DAC_OVERRIDE, so this process now meets permissions exactly as a user would.
        libc = ctypes.CDLL(None, use_errno=True)
        libc.setfsgid(65534)
        libc.setfsuid(65534)
        if libc.setfsuid(-1) != 65534:
            print("skip|setfsuid had no effect")
            sys.exit(0)
    try:
        Store(path).close()
    except errors.AssistantError as exc:
        print(type(exc).__name__, exc, sep="|")
    else:
        print("opened|")
"""


@pytest.mark.parametrize("case", ["file", "folder", "new-file-in-folder"])
def test_read_only_file_or_folder_refused_on_open(shared_dir: Path, case: str) -> None:
    # Permissions bind only unprivileged users, so as root the check runs as "nobody".
    as_nobody = os.geteuid() == 0
    folder = shared_dir / "data"
    folder.mkdir()
    db_path = folder / "assistant.db"
    if case != "new-file-in-folder":
        with Store(db_path) as store:
            _chat(store, "mine", (("keep", "this"),))
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert before or case == "new-file-in-folder"
    for path in [folder, *folder.iterdir()]:
        if as_nobody:
            os.chown(path, 65534, 65534)
        path.chmod(0o755 if path.is_dir() else 0o644)
    if case == "file":
        db_path.chmod(0o444)
    else:
        folder.chmod(0o555)

    result = _run_python(
        _OPEN_AND_REPORT, str(db_path), "1" if as_nobody else "0", str(shared_dir / "warm.db")
    )
    assert result.returncode == 0, result.stderr
    kind, _, message = result.stdout.strip().partition("|")
    if kind == "skip":
        pytest.skip(f"cannot act as an unprivileged user to test permissions: {message}")
    assert kind == "DatabaseReadOnly", result.stdout
    named = db_path if case == "file" else folder
    assert str(named) in message and ("read-only" in message or "not writable" in message)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_search_finds_conversation_titles(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.db")
    trip = store.create_conversation("Trip to Lisbon in May")
    other = store.create_conversation("Groceries")
    store.add_message(other.id, "user", "Lisbon is lovely")
    hits = store.search("lisbon")
    assert [(h.conversation_id, h.role) for h in hits][:1] == [(trip.id, "title")]
    assert format_snippet(hits[0].snippet) == "Trip to [Lisbon] in May"
    assert any(h.conversation_id == other.id and h.role == "user" for h in hits)
    assert store.search("100%_\\") == []  # LIKE wildcards are literal
    store.close()


def test_search_finds_words_inside_chinese_and_japanese_sentences(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.db")
    c = store.create_conversation("旅行")
    store.add_message(c.id, "user", "我想去北京旅游，有什么建议？")
    reply = store.start_reply(c.id, None)
    store.finish_reply(reply.id, "東京の天気は晴れです。", "stop")
    [hit] = store.search("北京")
    assert (hit.conversation_id, hit.role) == (c.id, "user")
    assert "[北京]" in format_snippet(hit.snippet)
    assert [h.message_id for h in store.search("天気")] == [reply.id]
    assert store.search("上海") == []
    # Found by the word index and by the scan alike: newest first all the same.
    later = store.add_message(c.id, "user", "北京 is lovely")
    assert [h.message_id for h in store.search("北京")] == [later.id, hit.message_id]
    store.close()


def test_search_returns_at_most_limit_hits(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.db")
    for i in range(8):
        c = store.create_conversation(f"Lisbon plan {i}")
        store.add_message(c.id, "user", f"Lisbon day {i}")
    hits = store.search("lisbon", limit=6)
    assert len(hits) == 6
    assert sum(h.role == "title" for h in hits) <= 5  # messages are not buried under titles
    store.close()


# -- versions and branches ----------------------------------------------------------------------


def test_a_regenerated_reply_is_a_version_and_the_old_one_stays(store: Store) -> None:
    cid = _chat(store, turns=(("Name a colour", "Red"),))
    question, first = store.messages(cid)
    store.set_head(cid, question.id)  # the next reply follows the question
    second = store.start_reply(cid, "tiny.gguf")
    store.finish_reply(second.id, "Blue", "stop")
    shown = store.messages(cid)
    assert [m.content for m in shown] == ["Name a colour", "Blue"]
    assert (shown[1].version, shown[1].versions) == (2, 2)
    assert store.show_version(second.id, -1) == first.id
    assert [m.content for m in store.messages(cid)] == ["Name a colour", "Red"]
    assert store.chat_history(cid)[-1]["content"] == "Red"  # the engine sees the branch shown
    assert store.show_version(first.id, -1) == first.id  # no version before the first


def test_an_edit_starts_a_branch_and_the_old_branch_is_kept(store: Store, db_path: Path) -> None:
    cid = _chat(store, turns=(("Hi", "Hello"), ("Tell me a joke", "Knock knock")))
    joke = store.messages(cid)[2]
    edited = store.add_version(joke.id, "Tell me a poem")
    reply = store.start_reply(cid, "tiny.gguf")
    store.finish_reply(reply.id, "Roses are red", "stop")
    assert [m.content for m in store.messages(cid)] == [
        "Hi",
        "Hello",
        "Tell me a poem",
        "Roses are red",
    ]
    assert (store.messages(cid)[2].version, store.messages(cid)[2].versions) == (2, 2)
    store.close()
    with Store(db_path) as again:  # after a restart, both branches are there
        assert [m.content for m in again.messages(cid)][-1] == "Roses are red"
        again.show_version(edited.id, -1)
        assert [m.content for m in again.messages(cid)] == [
            "Hi",
            "Hello",
            "Tell me a joke",
            "Knock knock",
        ]
        exported = as_text(again, cid, ExportFormat.MARKDOWN)  # the export writes the branch shown
        assert "Tell me a joke" in exported and "poem" not in exported
        # A search hit in the other branch shows that branch.
        [hit] = [h for h in again.search("poem") if h.message_id]
        again.show_branch_of(hit.message_id)
        assert again.messages(cid)[-1].content == "Roses are red"
        # Deleting a message deletes what follows it on every branch.
        again.delete_messages_from(again.messages(cid)[2].id)
        assert [m.content for m in again.messages(cid)][2:] == ["Tell me a joke", "Knock knock"]
        assert again.search("joke") and not again.search("poem") and not again.search("Roses")


def test_chats_from_before_the_tree_become_one_branch(db_path: Path) -> None:
    from sqlite_utils import Database

    db_path.parent.mkdir(parents=True)
    db = Database(db_path)
    migrations.apply(db, stop_before="m007_messages_as_a_tree")
    now = "2026-01-01T00:00:00.000000+00:00"
    db.execute(
        "INSERT INTO conversations (title, created_at, updated_at) VALUES ('Old', ?, ?)", (now, now)
    )
    for role, text in (("user", "one"), ("assistant", "two"), ("user", "three")):
        db.execute(
            "INSERT INTO messages (conversation_id, role, content, created_at) VALUES (1, ?, ?, ?)",
            (role, text, now),
        )
    db.conn.commit()
    db.close()
    with Store(db_path) as store:
        assert [m.content for m in store.messages(1)] == ["one", "two", "three"]
        assert [m.parent_id for m in store.messages(1)] == [None, 1, 2]


def test_a_long_chat_is_deleted_whole(store: Store) -> None:
    # Every message is the parent of the next: deleting must not be limited by chain depth
    # (SQLite stops cascades and triggers 1,000 levels deep).
    cid = store.create_conversation("Long").id
    for i in range(1200):
        store.add_message(cid, "user" if i % 2 == 0 else "assistant", f"message {i} walrus")
    messages = store.messages(cid)
    assert len(messages) == 1200 and messages[-1].parent_id == messages[-2].id
    store.delete_messages_from(messages[100].id)  # the 1,100 after it go too
    assert len(store.messages(cid)) == 100
    assert store.db.conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 100
    store.delete_conversation(cid)
    assert store.db.conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 0
    assert store.search("walrus") == []


def test_deleting_a_first_message_shows_the_other_version(store: Store) -> None:
    cid = _chat(store, turns=(("Hi", "Hello"),))
    first = store.messages(cid)[0]
    second = store.add_version(first.id, "Hey")
    store.delete_messages_from(second.id)
    assert [m.content for m in store.messages(cid)] == ["Hi", "Hello"]


def test_a_reply_that_only_thought_says_so(store: Store) -> None:
    from assistant.conversations.export import describe_message

    conversation = store.create_conversation("Deep", model="qwen3.gguf")
    store.add_message(conversation.id, "user", "Prove it")
    reply = store.start_reply(conversation.id, "qwen3.gguf")
    store.finish_reply(reply.id, "", "length", reasoning="First, consider...")
    text = describe_message(store.message(reply.id))
    assert "spent the whole reply thinking" in text and "reply limit" in text
