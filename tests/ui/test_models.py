"""Models in the window: swapping mid-conversation, bad files, first run, import by drop."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QTimer, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent

from assistant.models import library
from tests.ui.conftest import fast_settings
from tests.ui.helpers import LOAD_TIMEOUT_MS, REPLY_TIMEOUT_MS, send, wait_ready


def _pick(qtbot, window, path: Path) -> None:
    """Choose a model in the picker the way a user does, and wait for it to load."""
    combo = window.header.model_picker.combo
    index = combo.findData(str(path))
    assert index >= 0, [combo.itemData(i) for i in range(combo.count())]
    with qtbot.waitSignal(window.models.model_changed, timeout=LOAD_TIMEOUT_MS):
        combo.activated.emit(index)
    wait_ready(qtbot, window)


def test_picker_lists_models_with_quantization_and_size(qtbot, make_window, tiny_models) -> None:
    window = make_window(fast_settings(tiny_models["a"]))
    combo = window.header.model_picker.combo
    texts = [combo.itemText(i) for i in range(combo.count())]
    assert "tiny-a · F32 · " in texts[0] and texts[0].endswith("kB")
    assert len(texts) == 3
    assert combo.currentData() == str(tiny_models["a"])
    assert "tiny-a" in window.status_bar.model_label.text()


def test_swap_model_mid_conversation_and_keep_chatting(qtbot, make_window, tiny_models) -> None:
    window = make_window(fast_settings(tiny_models["a"]))
    app = window.controllers
    first = send(qtbot, window, "hello a")
    conversation_id = app.session.conversation_id
    _pick(qtbot, window, tiny_models["b"])
    assert app.models.loaded.path.name == "tiny-b.gguf"
    assert app.store.conversation(conversation_id).model == "tiny-b.gguf"
    second = send(qtbot, window, "hello b")
    assert first.model_file == "tiny-a.gguf" and second.model_file == "tiny-b.gguf"
    assert [m.role for m in app.store.messages(conversation_id)] == ["user", "assistant"] * 2
    assert app.settings.default_model == "tiny-b.gguf"

    # A conversation remembers its model: a new chat on A, then back to the B chat swaps back.
    window.new_action.trigger()
    _pick(qtbot, window, tiny_models["a"])
    send(qtbot, window, "on a again")
    with qtbot.waitSignal(app.models.model_changed, timeout=LOAD_TIMEOUT_MS):
        app.session.open_conversation(conversation_id)
    wait_ready(qtbot, window)
    assert app.models.loaded.path.name == "tiny-b.gguf"
    assert window.header.model_picker.combo.currentData() == str(tiny_models["b"])


def test_swap_while_generating_stops_then_loads(qtbot, make_window, tiny_models) -> None:
    window = make_window(fast_settings(tiny_models["a"], max_tokens=100_000))
    app = window.controllers
    window.composer.message_box.setPlainText("long")
    with qtbot.waitSignal(app.session.reply_text_appended, timeout=REPLY_TIMEOUT_MS):
        window.composer.send_button.click()
    with qtbot.waitSignal(app.session.reply_finished, timeout=REPLY_TIMEOUT_MS) as blocker:
        app.session.select_model(str(tiny_models["b"]))
    assert blocker.args[0].finish_reason == "cancelled"
    wait_ready(qtbot, window)
    assert app.models.loaded.path.name == "tiny-b.gguf"


@pytest.mark.parametrize("kind", ["truncated", "text", "missing"])
def test_bad_model_file_shows_a_clear_message_and_keeps_the_model(
    qtbot, make_window, tiny_models, tmp_path: Path, kind: str
) -> None:
    window = make_window(fast_settings(tiny_models["a"]))
    app = window.controllers
    bad = tmp_path / f"{kind}.gguf"
    if kind == "truncated":
        data = tiny_models["b"].read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    elif kind == "text":
        bad.write_text("This is not a model, just text with a .gguf name.\n")
    with qtbot.waitSignal(app.models.error, timeout=LOAD_TIMEOUT_MS) as blocker:
        app.session.select_model(str(bad))
    message = blocker.args[0]
    expected = {"truncated": "truncat", "text": "not a GGUF", "missing": "does not exist"}[kind]
    assert expected.lower() in message.lower(), message
    assert window.banner.isVisible() and window.banner.text() == message
    wait_ready(qtbot, window)
    assert app.models.loaded.path.name == "tiny-a.gguf"
    assert window.header.model_picker.combo.currentData() == str(tiny_models["a"])
    assert send(qtbot, window, "still works").content


def test_importing_a_bad_file_says_so(qtbot, make_window, tiny_models, tmp_path: Path) -> None:
    window = make_window(fast_settings(tiny_models["a"]))
    bad = tmp_path / "notes.gguf"
    bad.write_text("hello\n")
    with qtbot.waitSignal(window.models.error, timeout=LOAD_TIMEOUT_MS) as blocker:
        window.models.import_model(str(bad))
    assert "gguf" in blocker.args[0].lower()
    assert not (tiny_models["a"].parent / "notes.gguf").exists()
    assert window.models.loaded.path.name == "tiny-a.gguf"


def _drop(window, path: Path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    enter = QDragEnterEvent(
        QPointF(50, 50),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
    )
    window.dragEnterEvent(enter)
    assert enter.isAccepted()
    drop = QDropEvent(
        QPointF(50, 50),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
    )
    window.dropEvent(drop)


def test_first_run_without_any_model_shows_the_empty_state(
    qtbot, make_window, tiny_model_files, monkeypatch
) -> None:
    monkeypatch.setattr(library, "ensure_starter_model", lambda: None)  # as if not pip-installed
    window = make_window(fast_settings(None), start=False)
    with qtbot.waitSignal(window.models.model_missing, timeout=LOAD_TIMEOUT_MS):
        window.controllers.start()
    assert window.stack.currentWidget() is window.empty_state
    help_text = window.empty_state.text.text()
    assert library.STARTER_HINT in help_text and "Add a GGUF file" in help_text
    import sys

    from assistant.ui.model_manager import no_model_help

    monkeypatch.setattr(sys, "frozen", True, raising=False)  # the installed app: no pip there
    assert "reinstall Assistant" in no_model_help() and "pip" not in no_model_help()
    assert (
        window.empty_state.add_button.isVisible() and window.empty_state.browse_button.isVisible()
    )
    assert not window.composer.send_button.isEnabled()
    assert window.status_bar.model_label.text() == "No model"
    # No dead end: dropping a GGUF file onto the window imports it and loads it.
    with qtbot.waitSignal(window.models.model_imported, timeout=LOAD_TIMEOUT_MS):
        _drop(window, tiny_model_files["a"])
    wait_ready(qtbot, window)
    assert (Path(window.models.loaded.path).parent / "tiny-a.gguf").exists()
    assert window.stack.currentWidget() is window.chat_view
    assert send(qtbot, window, "finally").content


def test_model_without_chat_template_is_noted_once(qtbot, make_window, tiny_models) -> None:
    window = make_window(fast_settings(tiny_models["a"]))
    notices: list[str] = []
    window.models.notice.connect(notices.append)
    _pick(qtbot, window, tiny_models["plain"])
    assert len(notices) == 1 and "template" in notices[0].lower()
    assert window.notice_label.text() == notices[0]
    assert send(qtbot, window, "plain format").content
    _pick(qtbot, window, tiny_models["a"])
    _pick(qtbot, window, tiny_models["plain"])
    assert len(notices) == 1


def test_default_model_gone_falls_back_with_a_message(
    qtbot, make_window, tiny_models, monkeypatch
) -> None:
    monkeypatch.setattr(library, "ensure_starter_model", lambda: None)
    settings = fast_settings(None, default_model="vanished.gguf")
    window = make_window(settings, start=False)
    with qtbot.waitSignal(window.models.error, timeout=LOAD_TIMEOUT_MS) as blocker:
        window.controllers.start()
    assert "vanished.gguf" in blocker.args[0]
    wait_ready(qtbot, window)  # the first installed model instead


@pytest.mark.starter
def test_starter_model_chats_and_swaps_with_a_tiny_one(
    qtbot, make_window, starter_model, tiny_models
) -> None:
    window = make_window(fast_settings(starter_model, max_tokens=24, temperature=0.0))
    app = window.controllers
    assert app.models.loaded.path.name == starter_model.name
    reply = send(qtbot, window, "What is the capital of France? Answer in one word.")
    assert reply.finish_reason in ("stop", "length") and reply.content.strip()
    assert reply.content.strip() in window.chat_view.toPlainText()
    assert "<end_of_turn>" not in reply.content
    _pick(qtbot, window, tiny_models["a"])
    assert send(qtbot, window, "and now?").model_file == "tiny-a.gguf"
    # Loading happens on the worker thread: the event loop keeps turning, progress is shown.
    ticks: list[float] = []
    progress: list[float] = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start(10)
    app.models.model_load_progress.connect(progress.append)
    _pick(qtbot, window, starter_model)
    timer.stop()
    assert progress and max(progress) > 0.5
    gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
    assert gaps and max(gaps) < 0.5, max(gaps)
    assert send(qtbot, window, "Say yes.").content.strip()


def test_template_note_goes_when_a_model_with_a_template_loads(
    qtbot, make_window, tiny_models
) -> None:
    window = make_window(fast_settings(tiny_models["a"]))
    _pick(qtbot, window, tiny_models["plain"])
    note = window.notice_label.text()
    assert "template" in note.lower() and window.notice_label.isVisible()
    _pick(qtbot, window, tiny_models["b"])
    assert not window.notice_label.isVisible()
    assert window.statusBar().currentMessage() != note
    assert "tiny-b" in window.status_bar.model_label.text()


def test_a_conversation_keeps_its_model_when_that_model_fails_to_load(
    qtbot, make_window, tiny_models
) -> None:
    window = make_window(fast_settings(tiny_models["a"]))
    store = window.controllers.store
    older = store.create_conversation("Older chat", model="tiny-b.gguf")
    store.add_message(older.id, "user", "from before")
    data = tiny_models["b"].read_bytes()
    tiny_models["b"].unlink()  # a hard link to the session's file: replaced, not written to
    tiny_models["b"].write_bytes(data[: len(data) // 2])  # broken since
    with qtbot.waitSignal(window.models.error, timeout=LOAD_TIMEOUT_MS):
        window.session.open_conversation(older.id)
    wait_ready(qtbot, window)
    assert window.models.loaded.path.name == "tiny-a.gguf"  # still active, for now
    assert store.conversation(older.id).model == "tiny-b.gguf"  # what the chat chose, kept


def test_a_model_loading_shows_its_progress_in_the_chat(qtbot, make_window, tiny_models) -> None:
    window = make_window(fast_settings(tiny_models["a"]))
    shown: list[tuple[bool, str]] = []
    window.models.model_load_progress.connect(
        lambda _f: shown.append((window.chat_progress.isVisible(), window.chat_progress.format()))
    )
    _pick(qtbot, window, tiny_models["b"])
    assert shown and all(visible for visible, _ in shown)
    assert all(text.startswith("Loading tiny-b.gguf") for _, text in shown)
    assert not window.chat_progress.isVisible()  # gone once it has loaded
