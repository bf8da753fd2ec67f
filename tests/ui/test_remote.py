"""Remote engines in the app: added in Settings, picked under their name, marked as leaving this
machine, hidden by "local only", and every fault one clear message with nothing lost.

The remote engine is llama-cpp-python's own server with the starter model, behind the tests'
fault proxy; the local engine runs a tiny model.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from assistant.chat.turn import ModelChoice
from assistant.conversations.export import ExportFormat
from assistant.conversations.export import conversation_text as as_text
from assistant.ui.model_picker import LEAVES_MACHINE
from assistant.ui.settings_dialog import SettingsDialog
from tests.conftest import db_rows
from tests.remote_servers import FAULTS, FaultProxy
from tests.ui.conftest import fast_settings
from tests.ui.helpers import REPLY_TIMEOUT_MS, send

pytestmark = pytest.mark.starter

REMOTE = ModelChoice("smollm2-135m", engine="gpu-box")
SYSTEM = "You are a helpful, concise assistant."


def add_engine_in_settings(qtbot, window, url: str, name: str = "gpu-box") -> None:
    """What a user does: Settings, fill in the engine, Add, OK."""
    dialog = SettingsDialog(window.controllers.settings, window)
    qtbot.addWidget(dialog)
    editor = dialog.engines
    qtbot.keyClicks(editor.name, name)
    qtbot.keyClicks(editor.url, url)
    qtbot.mouseClick(editor.add_button, Qt.MouseButton.LeftButton)
    assert editor.problem.isHidden(), editor.problem.text()
    assert editor.list.item(0).text() == f"{name}  ·  {url}"
    window.models.update_settings(dialog.result_settings())


def pick_remote(qtbot, window, choice: ModelChoice = REMOTE) -> None:
    picker = window.header.model_picker
    qtbot.waitUntil(lambda: picker.index_of(choice) >= 0, timeout=10_000)
    index = picker.index_of(choice)
    picker.combo.setCurrentIndex(index)
    picker.combo.activated.emit(index)
    qtbot.waitUntil(lambda: window.session.remote == choice, timeout=5000)


@pytest.fixture
def remote_window(qtbot, make_window, tiny_models, proxy: FaultProxy):
    """The app with a tiny model here and the proxied engine added in Settings and picked."""
    window = make_window(fast_settings(tiny_models["a"], system_prompt=SYSTEM, max_tokens=16))
    add_engine_in_settings(qtbot, window, proxy.url)
    pick_remote(qtbot, window)
    return window


def picker_texts(window) -> list[str]:
    combo = window.header.model_picker.combo
    return [combo.itemText(i) for i in range(combo.count())]


def test_add_an_engine_in_settings_pick_its_model_chat_and_see_the_mark(
    qtbot, make_window, tiny_models, proxy: FaultProxy, assistant_home: Path
) -> None:
    window = make_window(fast_settings(tiny_models["a"], system_prompt=SYSTEM, max_tokens=16))
    assert not window.header.remote_mark.isVisible()
    add_engine_in_settings(qtbot, window, proxy.url)
    qtbot.waitUntil(lambda: f"gpu-box · {LEAVES_MACHINE}" in picker_texts(window), timeout=10_000)
    assert "gpu-box / smollm2-135m  ↗" in picker_texts(window)

    pick_remote(qtbot, window)
    assert window.header.remote_mark.isVisible()
    assert window.header.remote_mark.text().startswith("↗ Leaves this machine")
    mark = window.header.remote_mark.text()
    assert "gpu-box" in mark and proxy.url in mark
    assert window.header.model_picker.combo.currentText() == "gpu-box / smollm2-135m  ↗"

    reply = send(qtbot, window, "Hello! Tell me about the sea.")
    assert reply.engine == "gpu-box" and reply.model_file == "smollm2-135m"
    assert reply.content and reply.finish_reason in ("stop", "length")
    shown = window.chat_view.toPlainText()
    assert reply.content.strip()[:20] in shown and "gpu-box / smollm2-135m · " in shown
    assert proxy.chat_requests()[-1].body["messages"][-1]["content"].startswith("Hello!")

    # Local only: the engine disappears from the picker, and the chat goes back to this machine.
    dialog = SettingsDialog(window.controllers.settings, window)
    qtbot.addWidget(dialog)
    dialog.engines.local_only.setChecked(True)
    window.models.update_settings(dialog.result_settings())
    qtbot.waitUntil(lambda: not window.header.model_picker.remote_choices(), timeout=5000)
    assert not any("gpu-box" in text for text in picker_texts(window))
    assert window.session.remote is None and not window.header.remote_mark.isVisible()
    sent_before = len(proxy.chat_requests())
    local = send(qtbot, window, "And now?")
    assert local.engine is None and local.model_file == tiny_models["a"].name
    assert len(proxy.chat_requests()) == sent_before


def test_an_engine_typed_in_but_not_added_is_added_by_ok_and_a_bad_one_keeps_the_dialog(
    qtbot, make_window, tiny_models
) -> None:
    window = make_window(fast_settings(tiny_models["a"]))
    dialog = SettingsDialog(window.controllers.settings, window)
    qtbot.addWidget(dialog)
    qtbot.keyClicks(dialog.engines.name, "typo")
    qtbot.keyClicks(dialog.engines.url, "gpu-box:8080")
    dialog.accept()
    assert dialog.result() != dialog.DialogCode.Accepted
    assert dialog.engines.problem.text().startswith("'gpu-box:8080' is not an engine address")
    dialog.engines.url.clear()
    qtbot.keyClicks(dialog.engines.url, "http://gpu-box:8080")
    dialog.accept()
    assert dialog.result() == dialog.DialogCode.Accepted
    assert [e.url for e in dialog.result_settings().engines] == ["http://gpu-box:8080/v1"]


def test_a_new_context_size_keeps_a_remote_chat_on_its_engine(
    qtbot, remote_window, proxy: FaultProxy
) -> None:
    window = remote_window
    dialog = SettingsDialog(window.controllers.settings, window)
    qtbot.addWidget(dialog)
    dialog.n_ctx.setValue(1024)
    with qtbot.waitSignal(window.models.model_changed, timeout=60_000):
        window.models.update_settings(dialog.result_settings())
    assert window.models.loaded.n_ctx == 1024  # reloaded here, for later
    assert window.session.remote == REMOTE and window.header.remote_mark.isVisible()
    assert window.status_bar.model_label.text() == "gpu-box / smollm2-135m"
    assert not window.status_bar.progress.isVisible()


def test_a_chat_switches_engines_with_its_history_and_keeps_it_after_a_restart(
    qtbot, make_window, tiny_models, proxy: FaultProxy, assistant_home: Path
) -> None:
    settings = fast_settings(tiny_models["a"], system_prompt=SYSTEM, temperature=0.0, max_tokens=16)
    window = make_window(settings)
    add_engine_in_settings(qtbot, window, proxy.url)
    pick_remote(qtbot, window)
    first = send(qtbot, window, "Hello! Tell me about the sea.")
    assert first.engine == "gpu-box" and first.content  # greedy: this model does answer that
    # To the model on this machine: the remote reply is part of what it is given.
    window.header.model_picker.combo.activated.emit(0)
    qtbot.waitUntil(lambda: window.session.remote is None, timeout=5000)
    assert not window.header.remote_mark.isVisible()
    history = [m["content"] for m in window.session.history(window.session.conversation_id)]
    assert history == [SYSTEM, "Hello! Tell me about the sea.", first.content]
    second = send(qtbot, window, "Hello here")
    assert second.engine is None and second.content
    # And back: the remote engine gets the whole conversation, this machine's reply included.
    pick_remote(qtbot, window)
    third = send(qtbot, window, "And then?")
    assert third.engine == "gpu-box"
    sent = [m["content"] for m in proxy.chat_requests()[-1].body["messages"]]
    assert sent == [SYSTEM, "Hello! Tell me about the sea.", first.content, "Hello here",
                    second.content, "And then?"]  # fmt: skip
    conversation_id = window.session.conversation_id
    pick_remote(qtbot, window)
    window.close()

    from assistant.settings import Settings

    again = make_window(Settings.load())  # as saved: the engine is still there
    again.session.open_conversation(conversation_id)
    qtbot.waitUntil(lambda: again.session.remote == REMOTE, timeout=10_000)
    assert again.header.remote_mark.isVisible()
    writers = db_rows(
        assistant_home, "select engine from messages where role='assistant' order by id"
    )
    assert writers == [("gpu-box",), (None,), ("gpu-box",)]


@pytest.mark.parametrize(("fault", "says", "partial"), FAULTS)
def test_each_fault_shows_one_message_keeps_the_partial_reply_and_the_app_goes_on(
    qtbot, remote_window, proxy: FaultProxy, assistant_home: Path, monkeypatch,
    fault: str, says: str, partial: bool,
) -> None:  # fmt: skip
    from assistant.clients import openai_client

    # How long the client waits before a retry is tested in tests/clients/test_remote.py; here, only
    # what the window shows once the retries are spent.
    proxy.retry_after = 0  # "now": the client's own backoff applies
    monkeypatch.setattr(openai_client, "INITIAL_RETRY_DELAY_S", 0.05)
    window = remote_window
    proxy.always(fault)
    reply = send(qtbot, window, "Hello! Tell me about the sea.")
    assert reply.finish_reason == "error" and reply.error.startswith(says)
    assert window.banner.isVisible() and window.banner.text().startswith(says)
    assert bool(reply.content) == partial
    stored = db_rows(assistant_home, "select role, content, finish_reason from messages")
    assert stored[0] == ("user", "Hello! Tell me about the sea.", None)
    assert stored[1][2] == "error" and stored[1][1] == reply.content
    # The fault goes away: the same chat goes on.
    proxy.always(None)
    window.banner.hide()
    again = send(qtbot, window, "Are you there?")
    assert again.finish_reason in ("stop", "length") and not window.banner.isVisible()


def test_reasoning_sent_apart_is_stored_apart_and_never_sent_back(
    qtbot, remote_window, proxy: FaultProxy, assistant_home: Path
) -> None:
    window = remote_window
    proxy.fail_next("reasoning")
    with qtbot.waitSignal(window.session.reasoning_appended, timeout=REPLY_TIMEOUT_MS):
        reply = send(qtbot, window, "Hello! Tell me about the sea.")
    assert reply.reasoning == "Let me think. The user greets me."
    thought = "The user greets me."
    assert thought not in reply.content and thought not in window.chat_view.toPlainText()
    send(qtbot, window, "And then?")
    sent = proxy.chat_requests()[-1].body["messages"]
    assert not any(thought in m["content"] or "Let me think" in m["content"] for m in sent)
    assert "> **Reasoning**" in as_text(
        window.controllers.store, reply.conversation_id, ExportFormat.MARKDOWN
    )


def test_stop_closes_a_remote_stream_at_once(qtbot, remote_window, proxy: FaultProxy) -> None:
    window = remote_window
    proxy.always("delay:30")  # a server that has not answered yet
    window.composer.message_box.setPlainText("Hello?")
    qtbot.keyClick(window.composer.message_box, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.session.state == "generating", timeout=5000)
    started = time.monotonic()
    with qtbot.waitSignal(window.session.reply_finished, timeout=REPLY_TIMEOUT_MS) as done:
        qtbot.keyClick(window.composer.message_box, Qt.Key.Key_Escape)
    assert time.monotonic() - started < 2
    assert done.args[0].finish_reason == "cancelled"
    assert not window.banner.isVisible()


def test_an_engine_that_goes_away_is_marked_unavailable_and_nothing_breaks(
    qtbot, remote_window, proxy: FaultProxy
) -> None:
    window = remote_window
    proxy.always("refuse")
    reply = send(qtbot, window, "Hello?")
    assert reply.finish_reason == "error"
    qtbot.waitUntil(lambda: "gpu-box · unavailable" in picker_texts(window), timeout=10_000)
    # The chat still shows its model (unavailable now), and this machine's model still works.
    assert window.session.remote == REMOTE
    window.header.model_picker.combo.activated.emit(0)
    qtbot.waitUntil(lambda: window.session.remote is None, timeout=5000)
    assert send(qtbot, window, "Hello here").finish_reason in ("stop", "length")
    proxy.always(None)
    window.controllers.remote_engines.refresh()
    qtbot.waitUntil(lambda: f"gpu-box · {LEAVES_MACHINE}" in picker_texts(window), timeout=10_000)


def test_a_chats_own_settings_reach_a_remote_engine(
    qtbot, remote_window, proxy: FaultProxy
) -> None:
    # llama-cpp-python's server is a known kind: the extensions (top-k, min-p, repeat penalty)
    # are sent too.
    window = remote_window
    panel = window.chat_settings_panel
    window.chat_settings_action.trigger()
    panel.preset.setCurrentText("Precise")
    panel.max_tokens.setValue(12)
    panel.seed.setValue(11)
    reply = send(qtbot, window, "Hello! Tell me about the sea.")
    assert reply.engine == "gpu-box"
    body = proxy.chat_requests()[-1].body
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["seed"]) == (
        0.2, 0.9, 12, 11,
    )  # fmt: skip
    assert (body["top_k"], body["min_p"], body["repeat_penalty"]) == (20, 0.1, 1.05)
