"""Documents in the app, with the real engine: a collection added in the Documents window and
indexed in the background, chosen for a chat, its passages given to the reply and shown under
it as sources that open the file; an unfinished run goes on after a restart."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QUrl

from assistant.documents.index import DocumentIndex
from tests.documents.samples import write_handbook
from tests.ui.conftest import fast_settings
from tests.ui.helpers import send

pytestmark = [pytest.mark.starter, pytest.mark.real_engine]

INDEX_TIMEOUT_MS = 120_000


@pytest.fixture
def handbook(tmp_path: Path) -> Path:
    folder = write_handbook(tmp_path / "Handbook")
    return folder


def test_add_choose_ask_and_open_a_source(
    qtbot, make_window, starter_model: Path, minilm_model: Path, handbook: Path, monkeypatch
) -> None:
    window = make_window(fast_settings(starter_model, temperature=0.0, max_tokens=16))
    window.dialogs.open_documents()
    dialog = window.dialogs.documents_dialog
    assert "No collections yet" in dialog.details.toPlainText()
    with qtbot.waitSignal(dialog.controller.indexing_finished, timeout=INDEX_TIMEOUT_MS) as done:
        dialog.controller.add("Handbook", [handbook])
    result = done.args[0]
    assert result.done == 3 and result.skipped == [
        (str(handbook / "locked.pdf"), "the PDF is password-protected")
    ]
    assert dialog.list.item(0).text() == "Handbook\n2 files · 3 passages · 1 skipped"
    assert "locked.pdf: the PDF is password-protected" in dialog.details.toPlainText()
    assert "Handbook: up to date" in dialog.progress_label.text()

    # Chosen for the chat from the header's menu; the choice is the chat's own setting.
    header = window.header
    action = next(a for a in header.documents_menu.actions() if a.text() == "Handbook")
    action.trigger()
    assert window.session.chat_settings.documents == ("Handbook",)
    assert header.documents_button.text() == "Documents (1)"

    reply = send(qtbot, window, "How many times was the Eddystone Lighthouse rebuilt?")
    sources = reply.source_list
    assert sources and sources[0]["path"] == str(handbook / "lighthouse.md")
    assert sources[0]["where"] == "lines 1-4"
    shown = window.chat_view.toPlainText()
    assert "Sources:  [1] lighthouse.md, lines 1-4" in shown
    # The question is stored as asked; the passages went to the engine only.
    user = window.session.history(reply.conversation_id)[-2]
    assert user["content"] == "How many times was the Eddystone Lighthouse rebuilt?"

    opened: list[QUrl] = []
    monkeypatch.setattr("assistant.ui.chat_view.QDesktopServices.openUrl", opened.append)
    window.chat_view.anchorClicked.emit(QUrl(f"source:{reply.id}-0"))
    assert opened == [QUrl.fromLocalFile(str(handbook / "lighthouse.md"))]
    # A file: link a model wrote (a document or tool could plant one) is not opened.
    window.chat_view.anchorClicked.emit(QUrl.fromLocalFile("/usr/bin/xterm"))
    assert len(opened) == 1

    # A question the documents do not answer: said, and answered without them.
    notices: list[str] = []
    window.session.notice.connect(notices.append)
    plain = send(qtbot, window, "Write a haiku about autumn leaves.")
    assert plain.source_list == []
    assert any("Nothing in this chat's documents matched" in n for n in notices)


def test_an_unfinished_index_goes_on_at_the_next_start(
    qtbot, make_window, starter_model: Path, minilm_model: Path, handbook: Path
) -> None:
    with DocumentIndex() as index:  # what a closed app left: found, not yet indexed
        collection = index.create("Handbook", minilm_model.name)
        index.add_source(collection, handbook)
        for path in sorted(handbook.iterdir()):
            st = path.stat()
            index.set_pending(collection, str(path), st.st_size, st.st_mtime_ns)
    window = make_window(fast_settings(starter_model))
    documents = window.controllers.documents
    qtbot.waitUntil(lambda: documents.collections()[0].pending == 0, timeout=INDEX_TIMEOUT_MS)
    assert documents.collections()[0].indexed == 2
    qtbot.waitUntil(lambda: documents.running is None, timeout=INDEX_TIMEOUT_MS)
