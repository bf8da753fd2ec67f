"""Chatting through the real window: send, stream, stop, regenerate, edit, batching, export."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QUrl

from assistant.conversations.export import ExportFormat
from assistant.conversations.export import conversation_text as as_text
from tests.ui.conftest import fast_settings
from tests.ui.helpers import REPLY_TIMEOUT_MS, send


def test_send_streams_the_reply_into_view_and_database(qtbot, make_window, tiny_models) -> None:
    window = make_window(fast_settings(tiny_models["a"]))
    app = window.controllers
    batches: list[str] = []
    app.session.reply_text_appended.connect(batches.append)
    committed_before_reply: list[bool] = []

    def on_reply_started(row) -> None:
        # The user's message is already in the database when the reply row appears.
        roles = [m.role for m in app.store.messages(row.conversation_id)]
        committed_before_reply.append(roles == ["user", "assistant"])

    app.session.reply_started.connect(on_reply_started)
    reply = send(qtbot, window, "Hello there, tiny model")

    assert committed_before_reply == [True]
    conversation_id = app.session.conversation_id
    assert conversation_id is not None
    stored = app.store.messages(conversation_id)
    assert [m.role for m in stored] == ["user", "assistant"]
    assert stored[0].content == "Hello there, tiny model"
    assert stored[1].id == reply.id
    assert stored[1].content and stored[1].content == "".join(batches)
    assert stored[1].finish_reason == "length"
    assert stored[1].completion_tokens == 48
    assert stored[1].model_file == "tiny-a.gguf"
    assert stored[1].duration_ms is not None and stored[1].ttft_ms is not None
    # Conversation records its model; the sidebar lists it; the view shows both turns.
    assert app.store.conversation(conversation_id).model == "tiny-a.gguf"
    assert window.sidebar.conversation_list.count() == 1
    shown = window.chat_view.toPlainText()
    assert "Hello there, tiny model" in shown and "Assistant" in shown
    words = re.findall(r"[A-Za-z]{3,}", stored[1].content)
    assert all(w in shown for w in words[:5])
    # Status bar: speed, time to first token, context used.
    assert "tok/s" in window.status_bar.speed_label.text()
    assert "first token" in window.status_bar.ttft_label.text()
    assert re.fullmatch(r"context \d+ / 2048", window.status_bar.context_label.text())
    assert window.status_bar.backend_label.text()
    assert window.composer.send_button.text() == "Send"


def test_tokens_reach_the_view_in_batches(qtbot, make_window, tiny_models) -> None:
    window = make_window(fast_settings(tiny_models["a"], max_tokens=400))
    batches: list[str] = []
    window.session.reply_text_appended.connect(batches.append)
    reply = send(qtbot, window, "Count please")
    assert reply.completion_tokens == 400
    assert window.chat_view.appends == len(batches) >= 1
    # One view update per 40 ms tick, not one per token.
    assert len(batches) <= reply.completion_tokens // 2, (len(batches), reply.completion_tokens)


def test_stop_keeps_the_partial_reply(qtbot, make_window, tiny_models) -> None:
    # Without a stop this reply would run until the 2048-token context is full.
    window = make_window(fast_settings(tiny_models["a"], max_tokens=100_000))
    app = window.controllers
    window.composer.message_box.setPlainText("Tell me everything")
    with qtbot.waitSignal(app.session.reply_text_appended, timeout=REPLY_TIMEOUT_MS):
        window.composer.send_button.click()
    assert window.composer.send_button.text() == "Stop"
    with qtbot.waitSignal(app.session.reply_finished, timeout=REPLY_TIMEOUT_MS) as blocker:
        window.composer.send_button.click()  # sets the stop Event directly
        assert app.session.state == "stopping"
        assert window.composer.send_button.text() == "Stopping..."
    reply = blocker.args[0]
    assert reply.finish_reason == "cancelled"
    assert reply.content
    assert reply.completion_tokens < 1900
    stored = app.store.messages(app.session.conversation_id)[-1]
    assert stored.finish_reason == "cancelled" and stored.content == reply.content
    assert "stopped" in window.chat_view.toPlainText()
    assert window.composer.send_button.text() == "Send"
    # Chatting goes on afterwards.
    app.settings.max_tokens = 16
    assert send(qtbot, window, "Shorter, please").finish_reason == "length"


def test_escape_stops(qtbot, make_window, tiny_models) -> None:
    window = make_window(fast_settings(tiny_models["a"], max_tokens=100_000))
    window.composer.message_box.setPlainText("Go on")
    with qtbot.waitSignal(window.session.reply_text_appended, timeout=REPLY_TIMEOUT_MS):
        window.composer.send_button.click()
    with qtbot.waitSignal(window.session.reply_finished, timeout=REPLY_TIMEOUT_MS) as blocker:
        window.stop_action.trigger()
    assert blocker.args[0].finish_reason == "cancelled"


def test_regenerate_keeps_every_version_and_the_one_shown_is_the_history(
    qtbot, make_window, tiny_models, fake_engine
) -> None:
    from tests.fake_engine import requests_received

    window = make_window(fast_settings(tiny_models["a"], max_tokens=8))
    app, view = window.controllers, window.chat_view
    first = send(qtbot, window, "Say something")
    replies = [first]
    for _ in range(2):
        with qtbot.waitSignal(app.session.reply_finished, timeout=REPLY_TIMEOUT_MS) as blocker:
            window.composer.regenerate_button.click()
        replies.append(blocker.args[0])
    assert len({r.content for r in replies}) == 3  # three different replies, all kept
    shown = app.store.messages(app.session.conversation_id)
    assert [m.role for m in shown] == ["user", "assistant"]
    assert (shown[1].id, shown[1].version, shown[1].versions) == (replies[2].id, 3, 3)
    assert "3/3" in view.toPlainText() and view.toPlainText().count("Say something") == 1
    # ‹ goes back to version 2: it is shown, and it is what the model sees next.
    view.anchorClicked.emit(QUrl(f"older:{replies[2].id}"))
    assert "2/3" in view.toPlainText() and replies[1].content.strip() in view.toPlainText()
    send(qtbot, window, "And then?")
    history = [m["content"] for m in requests_received(fake_engine)[-1]["messages"]]
    assert replies[1].content in history
    assert replies[0].content not in history and replies[2].content not in history


def test_an_edit_is_a_branch_and_the_old_branch_stays_after_a_restart(
    qtbot, make_window, tiny_models, fake_engine
) -> None:
    from tests.fake_engine import requests_received

    window = make_window(fast_settings(tiny_models["a"], max_tokens=8))
    app = window.controllers
    send(qtbot, window, "first question")
    send(qtbot, window, "second question")
    stored = app.store.messages(app.session.conversation_id)
    assert len(stored) == 4
    # Click "Edit" on the first message in the transcript.
    window.chat_view.anchorClicked.emit(QUrl(f"edit:{stored[0].id}"))
    assert window.composer.message_box.toPlainText() == "first question"
    assert window.composer.edit_label.isVisible()
    reply = send(qtbot, window, "first question, edited")
    branch = app.store.messages(app.session.conversation_id)
    assert [m.content for m in branch][0] == "first question, edited"
    assert [m.role for m in branch] == ["user", "assistant"] and branch[1].id == reply.id
    assert (branch[0].version, branch[0].versions) == (2, 2)
    sent = [m["content"] for m in requests_received(fake_engine)[-1]["messages"]]
    assert "first question, edited" in sent and "second question" not in sent
    shown = window.chat_view.toPlainText()
    assert "second question" not in shown and "first question, edited" in shown
    assert "2/2" in shown and not window.composer.edit_label.isVisible()

    # After a restart, the old branch is one click away, whole.
    conversation_id = app.session.conversation_id
    window.close()
    again = make_window(fast_settings(tiny_models["a"], max_tokens=8))
    assert again.session.conversation_id == conversation_id
    edited = again.controllers.store.messages(conversation_id)[0]
    again.chat_view.anchorClicked.emit(QUrl(f"older:{edited.id}"))
    old = [m.content for m in again.controllers.store.messages(conversation_id)]
    assert old[0] == "first question" and old[2] == "second question" and len(old) == 4
    assert "second question" in again.chat_view.toPlainText()


def test_edit_can_be_cancelled_with_escape(qtbot, make_window, tiny_models) -> None:
    window = make_window(fast_settings(tiny_models["a"]))
    send(qtbot, window, "keep me")
    message_id = window.controllers.store.messages(window.session.conversation_id)[0].id
    window.chat_view.anchorClicked.emit(QUrl(f"edit:{message_id}"))
    assert window.session.editing == message_id
    window.stop_action.trigger()  # Esc
    assert window.session.editing is None
    assert window.composer.message_box.toPlainText() == ""


def test_history_includes_system_prompt_and_turns(qtbot, make_window, tiny_models) -> None:
    window = make_window(fast_settings(tiny_models["a"], system_prompt="Be brief."))
    reply = send(qtbot, window, "one")
    history = window.session.history(reply.conversation_id)
    assert history[0] == {"role": "system", "content": "Be brief."}
    assert [h["role"] for h in history[1:]] == ["user", "assistant"]


def test_trimmed_history_is_announced(qtbot, make_window, tiny_models) -> None:
    window = make_window(fast_settings(tiny_models["a"], n_ctx=256, max_tokens=40))
    notices: list[str] = []
    window.session.notice.connect(notices.append)
    long_text = "word " * 60
    for _ in range(4):
        send(qtbot, window, long_text)
    assert any(
        re.fullmatch(
            r"Oldest \d+ messages? didn't fit in the context window and were left out\.", n
        )
        for n in notices
    ), notices
    assert "didn't fit" in window.notice_label.text()


def test_code_blocks_are_rendered_with_copy_links(qtbot, make_window, tiny_models) -> None:
    from PySide6.QtGui import QGuiApplication

    window = make_window(fast_settings(tiny_models["a"]))
    view = window.chat_view
    reply = send(qtbot, window, "code please")
    # Render a stored reply with code through the same path a finished reply takes.
    code_reply = type(reply)(
        **{
            **reply.__dict__,
            "id": reply.id + 1000,
            "content": (
                "Here:\n\n```python\ndef f(x):\n    return x  # done\n```\n\n"
                "and\n\n```sh\necho hi\n```\n"
            ),
        }
    )
    view.add_message(code_reply)
    assert view.code_blocks()[-2:] == ["def f(x):\n    return x  # done", "echo hi"]
    assert view.toPlainText().count("Copy code") >= 2
    html_reply = type(reply)(
        **{**reply.__dict__, "id": reply.id + 1001, "content": "a <b>tag</b> <img src='x.png'>"}
    )
    view.add_message(html_reply)
    assert "a <b>tag</b> <img src='x.png'>" in view.toPlainText()  # shown, not interpreted
    view.copy_code(len(view.code_blocks()) - 2)
    assert QGuiApplication.clipboard().text() == "def f(x):\n    return x  # done"


def test_export_markdown_and_json(qtbot, make_window, tiny_models, tmp_path: Path) -> None:
    window = make_window(fast_settings(tiny_models["a"]))
    app = window.controllers
    send(qtbot, window, "export me")
    md = tmp_path / "chat.md"
    with qtbot.waitSignal(app.conversations.export_finished, timeout=10_000):
        app.conversations.export(app.session.conversation_id, str(md), ExportFormat.MARKDOWN)
    assert "export me" in md.read_text(encoding="utf-8")
    js = tmp_path / "chat.json"
    with qtbot.waitSignal(app.conversations.export_finished, timeout=10_000):
        app.conversations.export(app.session.conversation_id, str(js), ExportFormat.JSON)
    assert "export me" in json.dumps(json.loads(js.read_text(encoding="utf-8")))


def test_closing_while_generating_keeps_the_partial_reply(qtbot, make_window, tiny_models) -> None:
    window = make_window(fast_settings(tiny_models["a"], max_tokens=100_000))
    app = window.controllers
    window.composer.message_box.setPlainText("A long one")
    with qtbot.waitSignal(app.session.reply_text_appended, timeout=REPLY_TIMEOUT_MS):
        window.composer.send_button.click()
    conversation_id = app.session.conversation_id
    window.close()
    assert not app.engine_thread.isRunning()
    from assistant.conversations.storage import Store

    with Store() as store:
        reply = store.messages(conversation_id)[-1]
    assert reply.role == "assistant" and reply.finish_reason == "cancelled" and reply.content


def test_the_database_holds_the_partial_reply_while_it_streams(
    qtbot, make_window, tiny_models, monkeypatch
) -> None:
    """How often it is written is tests/chat/test_turn.py's (with a clock of its own)."""
    import sqlite3

    from assistant import paths
    from assistant.chat import turn

    window = make_window(fast_settings(tiny_models["a"], max_tokens=300))
    app = window.controllers

    # With a short interval the database holds the partial text while the reply streams.
    monkeypatch.setattr(turn, "CHECKPOINT_INTERVAL_S", 0.0)
    seen_in_db: list[str] = []

    def look(_batch: str) -> None:
        if app.session.state != "generating":
            return
        db = sqlite3.connect(paths.database_path())
        try:
            row = db.execute(
                "select content, finish_reason from messages order by id desc limit 1"
            ).fetchone()
        finally:
            db.close()
        if row[1] is None and row[0]:
            seen_in_db.append(row[0])

    app.session.reply_text_appended.connect(look)
    reply = send(qtbot, window, "Again")
    assert seen_in_db and reply.content.startswith(seen_in_db[0])


def test_streaming_never_rerenders_the_whole_conversation(qtbot, make_window, tiny_models) -> None:
    window = make_window(fast_settings(tiny_models["a"], max_tokens=150))
    send(qtbot, window, "warm up")
    opened: list[object] = []
    window.session.conversation_opened.connect(lambda *args: opened.append(args))
    document = window.chat_view.document()
    blocks_before = document.blockCount()
    send(qtbot, window, "stream")
    assert opened == []
    assert window.chat_view.document() is document and document.blockCount() > blocks_before


def test_a_message_that_cannot_be_stored_stays_in_the_box(qtbot, make_window, tiny_models) -> None:
    window = make_window(fast_settings(tiny_models["a"]))
    db = window.controllers.store.db
    db.execute("pragma query_only = 1")  # the database turns read-only under the app
    box = window.composer.message_box
    box.setPlainText("Please keep me")
    with qtbot.waitSignal(window.session.error, timeout=REPLY_TIMEOUT_MS) as blocker:
        qtbot.keyClick(box, Qt.Key.Key_Return)
    assert "read-only" in blocker.args[0].lower() or "cannot" in blocker.args[0].lower()
    assert box.toPlainText() == "Please keep me"
    assert window.banner.isVisible()
    db.execute("pragma query_only = 0")
    reply = send(qtbot, window, box.toPlainText())
    assert reply.content and box.toPlainText() == ""


def test_conversation_system_prompt_is_used_for_the_next_reply(
    qtbot, make_window, tiny_models, monkeypatch, fake_engine
) -> None:
    from assistant.ui.conversation_dialog import ConversationSettingsDialog
    from tests.fake_engine import requests_received

    def sent_system_prompt() -> dict:
        return requests_received(fake_engine)[-1]["messages"][0]

    window = make_window(fast_settings(tiny_models["a"], system_prompt="Be brief."))
    app = window.controllers
    first = send(qtbot, window, "one")
    conversation_id = first.conversation_id
    shown: list[str] = []
    answer = {"prompt": "Talk like a pirate."}

    def exec_(dialog: ConversationSettingsDialog) -> int:
        shown.append(dialog.system_prompt.toPlainText())
        assert dialog.system_prompt.placeholderText() == "Be brief."  # what empty means
        dialog.system_prompt.setPlainText(answer["prompt"])
        return 1

    monkeypatch.setattr(ConversationSettingsDialog, "exec", exec_)
    assert window.conversation_settings_action in window.menuBar().actions()[1].menu().actions()
    window.conversation_settings_action.trigger()
    assert shown == [""]
    assert app.session.history(conversation_id)[0]["content"] == "Talk like a pirate."
    send(qtbot, window, "two")
    assert sent_system_prompt() == {"role": "system", "content": "Talk like a pirate."}

    # From the sidebar's menu: the dialog shows the prompt; emptied, the default applies again.
    answer["prompt"] = "  "
    item = window.sidebar.conversation_list.currentItem()
    menu = window.sidebar.context_menu(item)
    [action] = [a for a in menu.actions() if a.text() == "Conversation settings..."]
    action.trigger()
    assert shown[-1] == "Talk like a pirate."
    assert app.session.history(conversation_id)[0]["content"] == "Be brief."
    assert app.store.conversation(conversation_id).system_prompt is None

    # A new chat keeps the prompt chosen before its first message.
    window.new_action.trigger()
    answer["prompt"] = "Answer in French."
    window.conversation_settings_action.trigger()
    reply = send(qtbot, window, "bonjour")
    assert sent_system_prompt()["content"] == "Answer in French."
    assert app.session.history(reply.conversation_id)[0]["content"] == "Answer in French."
    assert app.session.history(conversation_id)[0]["content"] == "Be brief."


@pytest.mark.real_engine  # the engine's own log, with its threads' names
def test_log_records_name_their_threads(
    qtbot, make_window, tiny_models, assistant_home, caplog
) -> None:
    import logging
    import threading

    caplog.set_level(logging.INFO, logger="assistant")
    make_window(fast_settings(tiny_models["a"]))
    # The GUI's engine client thread, and the engine process's one inference thread.
    started = [r for r in caplog.records if "Started engine process" in r.message]
    assert started and {r.threadName for r in started} == {"engine-client"}
    engine_log = (assistant_home / "logs" / "engine.log").read_text()
    assert " INFO inference assistant.engine.llama: Loaded tiny-a.gguf" in engine_log
    assert threading.current_thread().name == "MainThread"


def test_the_engine_receives_the_history_and_the_settings(
    qtbot, make_window, tiny_models, fake_engine: Path
) -> None:
    from tests.fake_engine import requests_received

    settings = fast_settings(tiny_models["a"], temperature=0.3, max_tokens=7, top_p=0.5)
    window = make_window(settings)
    first = send(qtbot, window, "hello")
    assert first.completion_tokens == 7 and first.finish_reason == "length"
    send(qtbot, window, "again")
    body = requests_received(fake_engine)[-1]
    assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.3, 0.5, 7)
    assert [m["content"] for m in body["messages"]][-3:] == ["hello", first.content, "again"]
    assert body["stream"] is True and body["assistant"]["truncate"] is True


def test_a_thinking_reply_shows_its_thought_folded_and_never_sends_it_back(
    qtbot, make_window, assistant_home: Path, tmp_path: Path, fake_engine
) -> None:
    from tests.conftest import install_model
    from tests.fake_engine import THOUGHT, requests_received
    from tests.tinymodel import THINKING_TEMPLATE, write_tiny_model

    thinker = write_tiny_model(tmp_path / "thinker.gguf", chat_template=THINKING_TEMPLATE)
    window = make_window(fast_settings(install_model(thinker, assistant_home), max_tokens=12))
    view = window.chat_view
    thought = "".join(THOUGHT)
    seen_while_thinking: list[str] = []
    seen_at_answer: list[str] = []
    window.session.reasoning_appended.connect(
        lambda _t: seen_while_thinking.append(view.toPlainText())
    )
    window.session.reply_text_appended.connect(
        lambda _t: seen_at_answer.append(view.toPlainText()) if not seen_at_answer else None
    )
    reply = send(qtbot, window, "Why is the sky blue?")

    # It streamed under "Thinking...", and folded when the answer began.
    assert seen_while_thinking and "Thinking..." in seen_while_thinking[-1]
    assert "ponder" in seen_while_thinking[-1]
    assert "▸ Thought for" in seen_at_answer[0] and "ponder" not in seen_at_answer[0]
    # Stored apart from the answer, with how long it took; shown folded, unfolded on a click.
    assert reply.reasoning == thought and "ponder" not in reply.content and reply.content
    assert reply.reasoning_ms is not None
    assert "▸ Thought for" in view.toPlainText() and "ponder" not in view.toPlainText()
    view.anchorClicked.emit(QUrl(f"think:{reply.id}"))
    assert "▾ Thought for" in view.toPlainText() and thought in view.toPlainText()
    # The next turn's prompt has the answer, never the thinking.
    send(qtbot, window, "And at sunset?")
    sent = requests_received(fake_engine)[-1]["messages"]
    assert reply.content in [m["content"] for m in sent]
    assert not any("ponder" in m["content"] for m in sent)
    exported = as_text(window.controllers.store, reply.conversation_id, ExportFormat.MARKDOWN)
    assert "> **Reasoning**" in exported and "ponder" in exported


def test_per_chat_settings_reach_the_engine_and_stay_with_the_chat(
    qtbot, make_window, tiny_models, fake_engine
) -> None:
    from assistant.chat.settings import PRESETS
    from tests.fake_engine import requests_received

    window = make_window(fast_settings(tiny_models["a"], temperature=0.8, max_tokens=48))
    panel = window.chat_settings_panel
    assert not panel.isVisible()
    window.chat_settings_action.trigger()
    assert panel.isVisible() and window.header.settings_button.isChecked()
    assert panel.temperature.value() == pytest.approx(0.8)  # the defaults, until chosen
    first = send(qtbot, window, "Defaults first")
    panel.preset.setCurrentText("Creative")
    panel.max_tokens.setValue(20)
    panel.seed.setValue(7)
    second = send(qtbot, window, "Now be creative")
    body = requests_received(fake_engine)[-1]
    creative = PRESETS["Creative"]
    assert body["temperature"] == creative.temperature and body["top_p"] == creative.top_p
    assert body["top_k"] == creative.top_k and body["min_p"] == creative.min_p
    assert body["repeat_penalty"] == creative.repeat_penalty
    assert (body["max_tokens"], body["seed"]) == (20, 7)
    assert first.completion_tokens == 48 and second.completion_tokens == 20
    assert panel.preset.currentText() == "Creative"

    # A new chat starts from the defaults; the tuned one keeps its own, after a restart too.
    window.new_action.trigger()
    assert panel.temperature.value() == pytest.approx(0.8) and panel.max_tokens.value() == 48
    window.close()
    again = make_window(fast_settings(tiny_models["a"], temperature=0.8, max_tokens=48))
    assert again.session.conversation_id == second.conversation_id
    assert again.chat_settings_panel.max_tokens.value() == 20
    assert again.chat_settings_panel.preset.currentText() == "Creative"

    # A context length of its own loads the model again with it.
    with qtbot.waitSignal(again.models.model_changed, timeout=REPLY_TIMEOUT_MS):
        again.chat_settings_panel.n_ctx.setValue(1024)
    qtbot.waitUntil(lambda: not again.models.is_loading, timeout=REPLY_TIMEOUT_MS)
    assert again.models.loaded.n_ctx == 1024
    # Back to the defaults: the values from Settings again.
    again.chat_settings_panel.reset_button.click()
    assert again.session.chat_settings.to_json() is None
    assert again.chat_settings_panel.max_tokens.value() == 48


MARKDOWN_REPLY = (
    "# Plan\n\nFirst, some **bold** words and a list:\n\n- one\n- two\n\n"
    "```python\ndef greet(name):\n    return f'hello {name}'\n```\n\nThat is all."
)


def test_markdown_renders_while_the_reply_streams(
    qtbot, make_window, tiny_models, monkeypatch
) -> None:
    from PySide6.QtGui import QTextFormat

    from tests.fake_engine import DELAY_ENV, REPLY_ENV

    monkeypatch.setenv(REPLY_ENV, MARKDOWN_REPLY)
    monkeypatch.setenv(DELAY_ENV, "0.01")  # a token every 10 ms: many batches
    window = make_window(fast_settings(tiny_models["a"], max_tokens=500))
    view = window.chat_view
    seen: list[tuple[bool, bool, bool]] = []

    def look(_batch: str) -> None:
        heading = code = bold = False
        block = view.document().begin()
        while block.isValid():
            heading |= block.blockFormat().headingLevel() == 1 and block.text() == "Plan"
            language = block.blockFormat().property(QTextFormat.Property.BlockCodeLanguage)
            code |= language == "python" and "def greet" in block.text()
            for fragment_range in block.textFormats():
                text = block.text()[
                    fragment_range.start : fragment_range.start + fragment_range.length
                ]
                bold |= text == "bold" and fragment_range.format.fontWeight() >= 700
            block = block.next()
        seen.append((heading, bold, code))

    window.session.reply_text_appended.connect(look)
    reply = send(qtbot, window, "Plan it")
    assert reply.content == MARKDOWN_REPLY and reply.finish_reason == "stop"
    assert len(seen) >= 5  # streamed in many batches
    # Rendered as it came: the heading and bold before the reply ended, and the code block
    # shown as code while its fence was still open.
    assert any(h and b and not c for h, b, c in seen[:-1])
    assert any(c for _h, _b, c in seen[:-1])
    assert "```" not in view.toPlainText() and "**" not in view.toPlainText()
    assert view.code_blocks()[-1] == "def greet(name):\n    return f'hello {name}'"
    assert "python   Copy code" in view.toPlainText()  # the language, and its Copy link


def test_an_empty_reply_is_never_silent(qtbot, make_window, tiny_models, monkeypatch) -> None:
    """A model that ends its reply without text: the chat says so, in a notice and in the
    reply's footer, and offers to ask again."""
    from tests.fake_engine import REPLY_ENV
    from tests.ui.helpers import shown_messages

    monkeypatch.setenv(REPLY_ENV, " ")  # nothing but a space, then the end
    window = make_window(fast_settings(tiny_models["a"]))
    notices = shown_messages(window, "notice")
    reply = send(qtbot, window, "Once upon a time")
    assert reply.content.strip() == "" and reply.finish_reason == "stop"
    assert any("without any text" in n and "Regenerate" in n for n in notices), notices
    assert "no text: the model ended its reply without any text" in window.chat_view.toPlainText()


def test_a_link_opens_with_the_person_s_libraries_in_the_installed_app(monkeypatch) -> None:
    """PyInstaller's LD_LIBRARY_PATH is for the app and its engine, not for the browser."""
    import os
    import sys

    from assistant.ui import chat_view

    seen: list[str | None] = []
    monkeypatch.setattr(
        chat_view.QDesktopServices,
        "openUrl",
        lambda url: seen.append(os.environ.get("LD_LIBRARY_PATH")),
    )
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setenv("LD_LIBRARY_PATH", "/opt/assistant/_internal")
    monkeypatch.setenv("LD_LIBRARY_PATH_ORIG", "/home/person/lib")
    chat_view.open_outside(QUrl("https://example.org"))
    monkeypatch.delenv("LD_LIBRARY_PATH_ORIG")
    chat_view.open_outside(QUrl("https://example.org"))
    assert seen == ["/home/person/lib", None]
    assert os.environ["LD_LIBRARY_PATH"] == "/opt/assistant/_internal"  # the app keeps its own
