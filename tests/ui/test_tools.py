"""Tools in the app's window, with the real engine: MCP servers pasted in Settings, the Tools
button of a chat, each call asked about in a dialog (once, always, or not), the call shown
under the reply, folded, and stored with it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer

from tests.tools.test_mcp_servers import SLOW
from tests.ui.conftest import fast_settings
from tests.ui.helpers import send

pytestmark = [pytest.mark.starter, pytest.mark.real_engine]

# SmolLM2-135M calls a tool under tool_choice "auto" when asked this plainly (temperature 0).
ASK = "Use the tool slow__echo on 'hello'. Answer with a <tool_call> block only."


def window_with_tools(make_window, starter_model: Path, tmp_path: Path, **extra):
    servers = {"slow": {"command": sys.executable, "args": [SLOW, "--echo-only"]},
               "missing": {"command": str(tmp_path / "nothing-here")}}  # fmt: skip
    settings = fast_settings(starter_model, temperature=0.0, max_tokens=60, system_prompt="",
                             mcp_servers=servers, **extra)  # fmt: skip
    window = make_window(settings)
    assert window.header.tools_button.isEnabled()
    window.header.tools_button.click()
    assert window.session.chat_settings.tools
    return window


def new_chat_with_tools(window) -> None:
    window.session.new_conversation()
    window.header.tools_button.click()
    assert window.session.chat_settings.tools


def answer_with(window, button: str) -> list[str]:
    """Click ``button`` of each question dialog as the person would (a timer on the GUI
    thread: the worker's own signal would run a plain function on the worker's thread)."""
    asked: list[str] = []
    timer = QTimer(window)

    def look() -> None:
        dialog = window.dialogs.tool_dialog
        if dialog is not None and dialog.isVisible():
            asked.append(dialog.tool)
            getattr(dialog, button).click()

    timer.timeout.connect(look)
    timer.start(30)
    window._answer_timer = timer  # replaced by the next answer_with
    return asked


def test_an_allowed_call_runs_and_shows_under_the_reply(
    qtbot, make_window, starter_model: Path, tmp_path: Path
) -> None:
    window = window_with_tools(make_window, starter_model, tmp_path)
    notices: list[str] = []
    window.session.notice.connect(notices.append)
    asked = answer_with(window, "once_button")
    reply = send(qtbot, window, ASK)
    assert asked == ["slow/echo"], (reply.content, reply.tool_call_list)
    calls = reply.tool_call_list
    assert calls[0]["tool"] == "slow/echo" and calls[0]["status"] == "ran"
    assert "⚙ slow/echo" in window.chat_view.toPlainText()
    assert any("missing: could not start" in n for n in notices)


def test_denied_and_always(qtbot, make_window, starter_model: Path, tmp_path: Path) -> None:
    window = window_with_tools(make_window, starter_model, tmp_path)
    answer_with(window, "deny_button")
    denied = send(qtbot, window, ASK)
    assert denied.tool_call_list[0]["status"] == "denied"
    window._answer_timer.stop()
    asked = answer_with(window, "always_button")
    new_chat_with_tools(window)  # the same first question each time: the model calls
    send(qtbot, window, ASK)
    assert len(asked) == 1 and window.controllers.settings.allowed_tools == ["slow/echo"]
    new_chat_with_tools(window)
    again = send(qtbot, window, ASK)  # no question now
    assert len(asked) == 1 and again.tool_call_list[0]["status"] == "ran"
