"""Search as it is typed (assistant/conversations/search.py) on a real SQLite file: words being
typed, broad prefixes, and scripts without spaces through the trigram index.
tests/conversations/test_storage.py covers the basics (quoting, titles, newest first, odd
input)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.conversations import search
from assistant.conversations.migrations import _UNSPACED, migrations
from assistant.conversations.search import UNSPACED_SCRIPT, format_snippet
from assistant.conversations.storage import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "assistant.db") as store:
        yield store


def _add(store: Store, *texts: str, title: str = "Chat") -> list[int]:
    cid = store.create_conversation(title).id
    return [store.add_message(cid, "user", text).id for text in texts]


def _ids(hits: list[search.SearchHit]) -> list[int | None]:
    return [h.message_id for h in hits]


# -- the word being typed ---------------------------------------------------------------------


def test_a_word_being_typed_finds_every_longer_word_newest_first(store: Store) -> None:
    ids = _add(store, "the model", "two models", "a modem", "modest means", "mode", "moderna")
    assert _ids(store.search("mode")) == ids[::-1]  # "mode" itself, and every word it begins
    assert _ids(store.search("model")) == [ids[1], ids[0]]
    assert _ids(store.search("two mod")) == [ids[1]]  # earlier words must match whole
    assert store.search("modx") == []
    assert _ids(store.search("modes")) == [ids[3]]  # "modest"
    [typed] = store.search("moder")
    assert format_snippet(typed.snippet) == "[moderna]"


def test_the_word_being_typed_folds_case_and_accents_as_the_index_does(store: Store) -> None:
    [cafe] = _add(store, "un Café crème")
    assert _ids(store.search("CAF")) == [cafe]
    assert _ids(store.search("cré")) == [cafe]
    assert _ids(store.search("cre")) == [cafe]


def test_a_phrase_being_typed_stays_a_phrase(store: Store) -> None:
    ids = _add(store, "see node.js docs", "node is not js", "the models agree", "models the")
    assert _ids(store.search("node.j")) == [ids[0]]  # "node", then right after it "j..."
    assert _ids(store.search('"the mod"')) == [ids[2]]


def test_words_being_typed_in_other_scripts(store: Store) -> None:
    ids = _add(store, "한국어 문법", "Привет, мир", "Καλημέρα κόσμε")
    assert _ids(store.search("한국")) == [ids[0]]  # Hangul: a word of its own
    assert _ids(store.search("прив")) == [ids[1]]
    assert _ids(store.search("καλη")) == [ids[2]]


def test_a_broad_prefix_is_matched_in_the_newest_messages(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search, "PREFIX_WORDS_MAX", 2)  # "al" begins more words than that
    ids = _add(store, "alpha", "alps ahead", "red algae", "Ça alors", "red alder", "beta")
    assert _ids(store.search("al")) == ids[:5][::-1]
    assert _ids(store.search("red al")) == [ids[4], ids[2]]
    assert _ids(store.search("al", limit=2)) == [ids[4], ids[3]]
    [hit] = store.search("red al", limit=1)
    assert format_snippet(hit.snippet) == "red [alder]"
    assert _ids(store.search("ca")) == [ids[3]]  # "Ça" is "ca" to the index


def test_a_broad_prefix_found_only_in_older_messages_is_still_found(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search, "PREFIX_WORDS_MAX", 2)
    monkeypatch.setattr(search, "RECENT_MESSAGES", 3)  # the newest three hold no "al..." word
    old = _add(store, "alpha", "alps", "algae")
    _add(store, "one", "two", "three", "four")
    assert _ids(store.search("al")) == old[::-1]


# -- scripts without spaces -------------------------------------------------------------------


def test_chinese_words_of_every_length_anywhere_in_a_sentence(store: Store) -> None:
    ids = _add(store, "我想去北京旅游", "今天天气很好", "去公园", "天", "東京の天気は晴れです")
    assert _ids(store.search("北京")) == [ids[0]]
    assert _ids(store.search("旅游")) == [ids[0]]  # two characters at the very end
    assert _ids(store.search("公园")) == [ids[2]]
    assert _ids(store.search("天")) == [ids[4], ids[3], ids[1]]  # one character, even alone
    assert _ids(store.search("天气很好")) == [ids[1]]
    assert _ids(store.search("天気")) == [ids[4]]
    assert store.search("上海") == [] and store.search("火山口") == []
    assert _ids(store.search("天 晴れ")) == [ids[4]]  # every word, anywhere
    [hit] = store.search("北京")
    assert format_snippet(hit.snippet) == "我想去[北京]旅游"


def test_thai_and_mixed_scripts(store: Store) -> None:
    ids = _add(store, "สวัสดีครับ", "用GPU加速推理", "gpu only")
    assert _ids(store.search("ดีคร")) == [ids[0]]
    assert _ids(store.search("GPU加速")) == [ids[1]]
    assert _ids(store.search("gpu加")) == [ids[1]]  # the trigram index ignores case too
    assert _ids(store.search("加速 gpu")) == [ids[1]]


def test_a_common_character_is_checked_in_what_the_other_words_find(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search, "PREFIX_WORDS_MAX", 1)  # "的" begins two trigrams here
    ids = _add(store, "我的书", "你的会议", "会议改到明天")
    assert _ids(store.search("的")) == [ids[1], ids[0]]  # alone: a scan, newest first
    assert _ids(store.search("会议 的")) == [ids[1]]


def test_the_trigram_index_follows_every_change(store: Store) -> None:
    cid = store.create_conversation("Edits").id
    reply = store.start_reply(cid, None)
    store.checkpoint_reply(reply.id, "草稿里的熊猫")
    assert _ids(store.search("熊猫")) == [reply.id]
    store.finish_reply(reply.id, "最后是老虎", "stop")
    assert store.search("熊猫") == [] and _ids(store.search("老虎")) == [reply.id]
    [question] = _add(store, "英文 question")
    store.edit_message(question, "plain question")  # leaves the trigram index
    assert store.search("英文") == []
    assert store.db.conn.execute("SELECT count(*) FROM messages_unspaced").fetchone()[0] == 1
    store.delete_conversation(cid)
    assert store.search("老虎") == []
    assert store.integrity_check()


def test_the_glob_class_and_the_regex_name_the_same_scripts(store: Store) -> None:
    # Each range's first and last character, and the characters just outside it.
    inner = _UNSPACED[1:-1]  # "[a-bc-d...]"
    ranges = list(zip(inner[0::3], inner[2::3], strict=True))
    assert len(ranges) == 7
    samples = [chr(c) for a, b in ranges for c in (ord(a) - 1, ord(a), ord(b), ord(b) + 1)]
    for ch in samples:
        _add(store, f"x{ch}y")
    unspaced = {
        row[0][1]
        for row in store.db.conn.execute("SELECT content FROM messages_unspaced").fetchall()
    }
    assert unspaced == {ch for ch in samples if UNSPACED_SCRIPT.search(ch)}


def test_messages_from_before_the_trigram_index_are_found(tmp_path: Path) -> None:
    from sqlite_utils import Database

    path = tmp_path / "old.db"
    db = Database(path)
    migrations.apply(db, stop_before="m008_index_unspaced_scripts_by_trigram")
    now = "2026-01-01T00:00:00.000000+00:00"
    db.execute("INSERT INTO conversations (title, created_at, updated_at) VALUES ('旧', ?, ?)",
               (now, now))  # fmt: skip
    db.execute(
        "INSERT INTO messages (conversation_id, role, content, created_at) "
        "VALUES (1, 'user', '我想去北京旅游', ?)",
        (now,),
    )
    db.conn.commit()
    db.close()
    with Store(path) as store:
        assert _ids(store.search("北京")) == [1]
        assert store.integrity_check()


def test_a_stale_trigram_index_fails_the_integrity_check(store: Store) -> None:
    _add(store, "北京")
    store.db.conn.execute("DROP TRIGGER messages_trigram_ai")
    _add(store, "上海")
    assert store.integrity_check() is False
