"""The conversation list: new, open, rename, delete with confirmation, search as you type."""

from __future__ import annotations

import re

from PySide6.QtCore import Qt, QUrl
from PySide6.QtWidgets import QMessageBox

from tests.ui.conftest import fast_settings
from tests.ui.helpers import send


def _search_word(text: str) -> str:
    """A whole word as the FTS5 tokenizer sees it (runs of letters and digits), plain ASCII.

    Gibberish replies mix in other characters, and a letter run glued to one of them is part of
    a longer token that a search for the ASCII part alone would not find.
    """
    tokens = re.findall(r"[^\W_]+", text)
    words = [t for t in tokens if re.fullmatch(r"[A-Za-z]{3,}", t)]
    assert words, text
    return max(words, key=len)


def test_new_chat_and_switching(qtbot, make_window, tiny_models) -> None:
    window = make_window(fast_settings(tiny_models["a"]))
    app = window.controllers
    send(qtbot, window, "first chat")
    first_id = app.session.conversation_id
    window.new_action.trigger()
    assert app.session.conversation_id is None
    assert window.chat_view.toPlainText() == ""
    send(qtbot, window, "second chat")
    second_id = app.session.conversation_id
    assert second_id != first_id
    titles = [window.sidebar.conversation_list.item(i).text() for i in range(2)]
    assert titles == ["second chat", "first chat"]  # most recent first
    item = window.sidebar.conversation_list.item(1)
    window.sidebar.conversation_list.itemClicked.emit(item)
    assert app.session.conversation_id == first_id
    assert "first chat" in window.chat_view.toPlainText()
    assert "second chat" not in window.chat_view.toPlainText()


def test_rename(qtbot, make_window, tiny_models) -> None:
    window = make_window(fast_settings(tiny_models["a"]))
    send(qtbot, window, "to be renamed")
    item = window.sidebar.conversation_list.item(0)
    item.setText("Renamed chat")  # what finishing an in-place edit does
    conversation_id = window.session.conversation_id
    assert window.controllers.store.conversation(conversation_id).title == "Renamed chat"
    assert window.sidebar.conversation_list.item(0).text() == "Renamed chat"


def test_search_finds_a_word_from_an_old_reply_and_opens_it(
    qtbot, make_window, tiny_models
) -> None:
    window = make_window(fast_settings(tiny_models["a"], max_tokens=200))
    app = window.controllers
    reply = send(qtbot, window, "an old conversation")
    old_id = app.session.conversation_id
    word = _search_word(reply.content)
    window.new_action.trigger()
    send(qtbot, window, "something newer")
    window.search_action.trigger()  # Ctrl+F / Ctrl+K focus the search field
    assert window.sidebar.search_field.hasFocus() or not window.isActiveWindow()
    qtbot.keyClicks(window.sidebar.search_field, word)  # as you type
    hits = window.sidebar.hit_list
    qtbot.waitUntil(lambda: window.sidebar.stack.currentWidget() is hits)
    targets = [hits.item(i).data(Qt.ItemDataRole.UserRole) for i in range(hits.count())]
    assert (old_id, reply.id) in targets
    index = targets.index((old_id, reply.id))
    assert "«" in hits.item(index).text()
    hits.itemClicked.emit(hits.item(index))
    assert app.session.conversation_id == old_id
    assert "an old conversation" in window.chat_view.toPlainText()
    # Clearing the field shows the conversations again.
    window.sidebar.search_field.clear()
    assert window.sidebar.stack.currentWidget() is window.sidebar.conversation_list


def test_search_waits_for_a_pause_in_typing(qtbot, make_window, tiny_models) -> None:
    window = make_window(fast_settings(tiny_models["a"]))
    searched: list[str] = []
    window.sidebar.search_requested.connect(searched.append)
    qtbot.keyClicks(window.sidebar.search_field, "hello world")
    qtbot.waitUntil(lambda: searched == ["hello world"])  # one search, not eleven
    window.sidebar.search_field.clear()
    assert searched == ["hello world", ""]  # clearing is immediate


def test_search_with_odd_input_does_not_break(qtbot, make_window, tiny_models) -> None:
    window = make_window(fast_settings(tiny_models["a"]))
    send(qtbot, window, "hello")
    qtbot.keyClicks(window.sidebar.search_field, '"AND (* NEAR')
    qtbot.waitUntil(lambda: window.sidebar.stack.currentWidget() is window.sidebar.no_hits)
    assert not window.banner.isVisible()


def test_delete_asks_then_removes_conversation_and_its_hits(
    qtbot, make_window, tiny_models, monkeypatch
) -> None:
    window = make_window(fast_settings(tiny_models["a"], max_tokens=200))
    app = window.controllers
    reply = send(qtbot, window, "delete this chat please")
    word = _search_word(reply.content)
    assert app.store.search(word)
    answers = [QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Yes]
    asked: list[str] = []

    def question(parent, title, text, *args):
        asked.append(text)
        return answers.pop(0)

    monkeypatch.setattr(QMessageBox, "question", question)
    item = window.sidebar.conversation_list.item(0)
    window.sidebar.confirm_delete(item)  # cancelled: nothing happens
    assert window.sidebar.conversation_list.count() == 1
    window.sidebar.conversation_list.setCurrentItem(item)
    window.sidebar.conversation_list.setFocus()
    window.sidebar._delete_current()  # the Delete key
    assert len(asked) == 2 and "delete this chat please" in asked[0]
    assert window.sidebar.conversation_list.count() == 0
    assert app.store.conversations() == []
    assert app.store.search(word) == []
    assert app.session.conversation_id is None
    assert window.chat_view.toPlainText() == ""
    with qtbot.waitSignal(window.sidebar.search_requested):
        qtbot.keyClicks(window.sidebar.search_field, word)
    assert (
        window.sidebar.hit_list.count() == 0
        or window.sidebar.stack.currentWidget() is window.sidebar.no_hits
    )


def test_conversations_are_shown_again_after_restart(qtbot, make_window, tiny_models) -> None:
    window = make_window(fast_settings(tiny_models["a"]))
    send(qtbot, window, "remember me")
    window.close()
    again = make_window(fast_settings(tiny_models["a"]))
    assert again.sidebar.conversation_list.count() == 1
    assert "remember me" in again.chat_view.toPlainText()


def test_a_new_chat_is_selected_in_the_list_once_sent(qtbot, make_window, tiny_models) -> None:
    window = make_window(fast_settings(tiny_models["a"]))
    send(qtbot, window, "select me")
    current = window.sidebar.conversation_list.currentItem()
    assert current is not None and current.text() == "select me"
    assert "select me" in window.chat_view.toPlainText()


def test_opening_a_chat_whose_model_is_gone_says_so(qtbot, make_window, tiny_models) -> None:
    window = make_window(fast_settings(tiny_models["a"]))
    store = window.controllers.store
    orphan = store.create_conversation("Old chat", model="gone.gguf")
    store.add_message(orphan.id, "user", "from long ago")
    with qtbot.waitSignal(window.models.error, timeout=5000) as blocker:
        window.session.open_conversation(orphan.id)
    assert "gone.gguf" in blocker.args[0] and window.banner.isVisible()
    assert "from long ago" in window.chat_view.toPlainText()
    assert window.models.loaded.path.name == "tiny-a.gguf"
    assert send(qtbot, window, "carry on").model_file == "tiny-a.gguf"
    assert store.conversation(orphan.id).model == "tiny-a.gguf"


def test_long_titles_are_elided_with_the_full_title_in_the_tooltip(
    qtbot, make_window, tiny_models
) -> None:
    window = make_window(fast_settings(tiny_models["a"]))
    window.resize(900, 600)
    reply = send(qtbot, window, "short")
    title = "A very long conversation title " * 8
    window.conversations.rename(reply.conversation_id, title)
    qtbot.wait(50)  # a layout pass
    lst = window.sidebar.conversation_list
    assert lst.horizontalScrollBarPolicy() == Qt.ScrollBarPolicy.ScrollBarAlwaysOff
    assert lst.textElideMode() == Qt.TextElideMode.ElideRight
    item = lst.item(0)
    assert item.toolTip() == title.strip()
    # The row is as wide as the list, not as its text: the style elides what doesn't fit.
    assert lst.fontMetrics().horizontalAdvance(title) > lst.viewport().width()
    assert lst.visualItemRect(item).width() <= lst.viewport().width()
    assert lst.horizontalScrollBar().maximum() == 0


def test_a_search_hit_on_another_branch_opens_that_branch(qtbot, make_window, tiny_models) -> None:
    window = make_window(fast_settings(tiny_models["a"], max_tokens=8))
    send(qtbot, window, "Tell me about walruses")
    conversation_id = window.session.conversation_id
    first = window.controllers.store.messages(conversation_id)[0]
    window.chat_view.anchorClicked.emit(QUrl(f"edit:{first.id}"))
    send(qtbot, window, "Tell me about penguins")  # a new branch; the walruses are on the old
    assert "walruses" not in window.chat_view.toPlainText()
    qtbot.keyClicks(window.sidebar.search_field, "walruses")
    hits = window.sidebar.hit_list
    qtbot.waitUntil(lambda: hits.count() > 0)
    [message_hit] = [
        hits.item(i)
        for i in range(hits.count())
        if hits.item(i).data(Qt.ItemDataRole.UserRole)[1] is not None
    ]
    hits.itemClicked.emit(message_hit)
    assert window.session.conversation_id == conversation_id
    assert "walruses" in window.chat_view.toPlainText()
    assert "penguins" not in window.chat_view.toPlainText()
