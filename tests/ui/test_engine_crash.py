"""The engine process dies under the real window: the app stays up, nothing is lost, and the
next message works; a crash that repeats leads to the fallback, and the user is told."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from assistant.engine.crash_injection import ENV as CRASH_ENV
from tests.clients.test_supervisor import trusting_probe_cache
from tests.conftest import install_model
from tests.tinymodel import write_streaming_model
from tests.ui.conftest import fast_settings
from tests.ui.helpers import send, shown_messages, wait_ready

# llama.cpp crashing is what these test: the real engine.
pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
    pytest.mark.real_engine,
]


@pytest.fixture(scope="module")
def streamer_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_streaming_model(tmp_path_factory.mktemp("streamer") / "streamer.gguf")


def test_sigkill_while_streaming_keeps_the_window_and_the_partial_reply(
    qtbot, make_window, streamer_file: Path, assistant_home: Path
) -> None:
    model = install_model(streamer_file, assistant_home)
    window = make_window(fast_settings(model, max_tokens=6000, n_ctx=8192))
    app = window.controllers
    supervisor = app.link.engine.supervisor
    first_pid = supervisor.pid
    shown: list[str] = []
    errors = shown_messages(window, "error")

    def kill_after_some_text(batch: str) -> None:
        shown.append(batch)
        if len("".join(shown)) > 60 and supervisor.pid == first_pid:
            supervisor.kill(signal.SIGKILL)

    app.session.reply_text_appended.connect(kill_after_some_text)
    reply = send(qtbot, window, "Tell me a very long story.")
    app.session.reply_text_appended.disconnect(kill_after_some_text)

    assert window.isVisible()
    assert reply.finish_reason == "error"
    assert reply.content and reply.content == "".join(shown)
    stored = app.store.messages(reply.conversation_id)
    assert [m.role for m in stored] == ["user", "assistant"]
    assert stored[0].content == "Tell me a very long story."
    assert stored[1].finish_reason == "error" and stored[1].content == reply.content
    assert stored[1].error and "SIGKILL" in stored[1].error
    assert any("The engine stopped (SIGKILL) while writing the reply" in e for e in errors)

    # A new engine process, the model loaded again: the next message gets a reply.
    wait_ready(qtbot, window)
    assert supervisor.pid != first_pid and supervisor.alive
    app.settings.max_tokens = 20
    again = send(qtbot, window, "And a short one?")
    assert again.finish_reason in ("stop", "length") and again.content


def test_a_crash_at_the_first_decode_falls_back_on_the_second_and_says_so(
    qtbot, make_window, tiny_models, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(CRASH_ENV, "decode")
    for name, value in trusting_probe_cache(tmp_path / "cache").items():
        monkeypatch.setenv(name, value)
    window = make_window(fast_settings(tiny_models["a"]))
    app = window.controllers
    errors = shown_messages(window, "error")

    first = send(qtbot, window, "Hello")
    assert first.finish_reason == "error" and first.error
    assert "SIGSEGV" in first.error and "reading the prompt" in first.error
    assert window.isVisible()
    wait_ready(qtbot, window)

    second = send(qtbot, window, "Hello again")
    assert second.finish_reason == "error"
    assert "crashed there twice" in second.error and "extra buffer types" in second.error
    assert any("extra buffer types" in e for e in errors)  # shown in the window's banner
    wait_ready(qtbot, window)
    assert "extra buffer types" in app.models.loaded.safe_mode_note
    assert "safe mode" in window.status_bar.backend_label.text()

    third = send(qtbot, window, "Third time lucky")
    assert third.finish_reason in ("stop", "length") and third.content
    messages = app.store.messages(third.conversation_id)
    # Every user message survived; the failed replies are kept with their reason.
    assert [m.content for m in messages if m.role == "user"] == [
        "Hello",
        "Hello again",
        "Third time lucky",
    ]
    assert [m.finish_reason for m in messages if m.role == "assistant"][:2] == ["error", "error"]


def test_local_api_serves_other_apps_from_the_same_engine(qtbot, make_window, tiny_models) -> None:
    import dataclasses
    import socket

    import openai

    from assistant.ui.settings_dialog import SettingsDialog

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    window = make_window(fast_settings(tiny_models["a"]))
    app = window.controllers
    assert not window.status_bar.api_label.isVisible()

    dialog = SettingsDialog(app.settings, window)
    dialog.local_api.setChecked(True)
    dialog.api_port.setValue(port)
    assert dialog.base_url.text() == f"http://127.0.0.1:{port}/v1"
    key = dialog.api_key.text()
    assert key.startswith("sk-assistant-")
    dialog.copy_key.click()
    from PySide6.QtGui import QGuiApplication

    assert QGuiApplication.clipboard().text() == key
    with qtbot.waitSignal(app.models.engine_started, timeout=60_000):
        app.models.update_settings(dataclasses.replace(dialog.result_settings()))
    wait_ready(qtbot, window)
    assert app.models.local_api_url == f"http://127.0.0.1:{port}/v1"
    api_label = window.status_bar.api_label
    assert api_label.isVisible() and api_label.text() == "Local API on"

    client = openai.OpenAI(base_url=app.models.local_api_url, api_key=key, max_retries=0)
    assert "tiny-a.gguf" in [m.id for m in client.models.list()]
    r = client.chat.completions.create(
        model="tiny-a.gguf", messages=[{"role": "user", "content": "hi"}], max_tokens=5
    )
    assert r.usage is not None and r.usage.completion_tokens == 5
    # The window chats through the same engine.
    reply = send(qtbot, window, "And me?")
    assert reply.finish_reason in ("stop", "length") and reply.content


def test_a_taken_local_api_port_is_said_and_the_app_still_chats(
    qtbot, make_window, tiny_models
) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = fast_settings(tiny_models["a"], local_api=True, api_port=port)
        window = make_window(settings, start=False)
        errors = shown_messages(window, "error")
        window.controllers.start()
        wait_ready(qtbot, window)
        qtbot.waitUntil(lambda: any("Local API is unavailable" in e for e in errors))
        assert any(f"127.0.0.1:{port}" in e for e in errors)
        reply = send(qtbot, window, "Still there?")
        assert reply.finish_reason in ("stop", "length") and reply.content
