"""The window's side of privacy: a whole chat opens no socket but loopback (in the GUI process
and its engine process), and "Delete all conversations" wipes them."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from PySide6.QtWidgets import QMessageBox

from tests.test_privacy import AUDIT_DIR, audited, holders, is_loopback
from tests.ui.conftest import fast_settings
from tests.ui.helpers import send

_recording: list[tuple[str, object]] | None = None


def _audit(event: str, args: tuple) -> None:
    if _recording is None:
        return
    if event in ("socket.connect", "socket.bind"):
        _recording.append((event, args[1]))
    elif event == "socket.getaddrinfo":
        _recording.append((event, (args[0], args[1])))


# Audit hooks cannot be removed: this one records only while a test asks it to.
sys.addaudithook(_audit)


def test_a_whole_chat_in_the_window_opens_no_socket_but_loopback(
    qtbot, make_window, tiny_models, monkeypatch, tmp_path: Path
) -> None:
    global _recording
    engine_log = tmp_path / "engine-sockets.log"
    monkeypatch.setenv("ASSISTANT_TEST_SOCKET_AUDIT", str(engine_log))
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(AUDIT_DIR), os.environ.get("PYTHONPATH", "")])
    )
    _recording = []
    try:
        window = make_window(fast_settings(tiny_models["a"]))
        send(qtbot, window, "Hello")
        send(qtbot, window, "And again")
        window.models.refresh_models()
        gui_events = list(_recording)
    finally:
        _recording = None
    engine_events = audited(engine_log)
    assert any(e == "socket.connect" for e, _ in gui_events)  # the GUI talked to its engine
    assert any(e == "socket.bind" for e, _ in engine_events)  # the engine listened
    foreign = [(e, t) for e, t in gui_events + engine_events if not is_loopback(e, t)]
    assert foreign == []


def test_delete_all_conversations_from_the_menu(
    qtbot, make_window, tiny_models, assistant_home: Path, monkeypatch
) -> None:
    window = make_window(fast_settings(tiny_models["a"]))
    send(qtbot, window, "remember the word vorpalquince")
    window.session.new_conversation()
    send(qtbot, window, "and another chat")
    assert window.sidebar.conversation_list.count() == 2
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    window.delete_all_action.trigger()
    assert window.sidebar.conversation_list.count() == 0
    assert window.controllers.store.conversations() == []
    assert holders(assistant_home, "vorpalquince") == []


def test_the_window_logs_no_message_text_even_at_debug(
    qtbot, make_window, tiny_models, assistant_home: Path, monkeypatch
) -> None:
    import logging

    from assistant.ui.app import setup_logging

    monkeypatch.setenv("ASSISTANT_LOG_LEVEL", "DEBUG")  # the engine process too
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    setup_logging()
    root.setLevel(logging.DEBUG)
    try:
        window = make_window(fast_settings(tiny_models["a"]))
        reply = send(qtbot, window, "the password is gingersnapvolt")
        window.close()
    finally:
        for handler in root.handlers[:]:
            if handler not in before:
                root.removeHandler(handler)
                handler.close()
        root.setLevel(level)
    logs = assistant_home / "logs"
    text = "\n".join(p.read_text(errors="replace") for p in logs.iterdir())
    assert "DEBUG" in text and "assistant.log" in {p.name for p in logs.iterdir()}
    assert "gingersnapvolt" not in text
    if len(reply.content.strip()) >= 12:
        assert reply.content.strip() not in text
