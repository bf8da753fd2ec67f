"""The Models page against a local fake Hub: search, open, fit, download, pause, resume, chat."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from assistant import paths
from assistant.models import downloads
from assistant.settings import Settings
from assistant.ui.models_controller import ModelsController
from assistant.ui.models_dialog import ModelsDialog
from assistant.ui.models_widgets import ESTIMATING, RECOMMENDED
from tests.hfserver import HFServer, hf_server  # noqa: F401 (a fixture used below)
from tests.ui.conftest import fast_settings
from tests.ui.helpers import send

TIMEOUT = 20_000
FIT_LABELS = {"Full GPU offload", "Partial GPU offload", "CPU only", "Too large"}
REPO = "tester/TinyChat-GGUF"
GATED = "tester/GatedChat-GGUF"
Q8 = "TinyChat-Q8_0.gguf"
LEFT = Qt.MouseButton.LeftButton


@pytest.fixture
def hub(
    hf_server: HFServer,  # noqa: F811 (the imported fixture)
    tiny_model_files: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> HFServer:
    """A fake Hub serving loadable tiny models; small chunks so progress and pause are visible."""
    monkeypatch.setattr(downloads, "CHUNK", 16 * 1024)
    monkeypatch.setattr(downloads, "RETRY_BASE_DELAY", 0.05)
    a = tiny_model_files["a"].read_bytes()
    b = tiny_model_files["b"].read_bytes()
    plain = tiny_model_files["plain"].read_bytes()
    half = len(plain) // 2
    hf_server.add_repo(
        REPO,
        {
            Q8: a,
            "TinyChat-Q4_K_M.gguf": b,
            # Only listed and estimated, never loaded: a byte split is not llama.cpp's split format.
            "TinyChat-F16-00001-of-00002.gguf": plain[:half],
            "TinyChat-F16-00002-of-00002.gguf": plain[half:],
            "README.md": b"# Tiny",
        },
        downloads=100,
        likes=1,
        last_modified="2024-01-01T00:00:00.000Z",
    )
    hf_server.add_repo(
        "tester/OtherChat-GGUF",
        {"OtherChat-Q4_K_M.gguf": b},
        downloads=5,
        likes=50,
        last_modified="2025-06-01T00:00:00.000Z",
    )
    hf_server.add_repo(GATED, {"GatedChat-Q4_K_M.gguf": a}, gated=401, downloads=1, likes=0)
    hf_server.required_token = "hf_secret_test_token"
    return hf_server


@pytest.fixture
def models_page(qtbot) -> Iterator[Callable[..., ModelsDialog]]:
    """Open Models dialogs; at the end stop their downloads and fail if a thread lives on."""
    from assistant.ui.workers import pending_tasks, wait_for_tasks

    dialogs: list[ModelsDialog] = []

    def make(parent=None, settings: Settings | None = None) -> ModelsDialog:
        controller = ModelsController(settings if settings is not None else Settings.load())
        dialog = ModelsDialog(parent, controller=controller)
        if parent is None:
            qtbot.addWidget(dialog)
        dialog.show()
        dialogs.append(dialog)
        return dialog

    yield make

    for dialog in dialogs:
        dialog.shutdown()
        dialog.close()
    assert wait_for_tasks(10_000), "a pool task is still running"
    qtbot.waitUntil(lambda: pending_tasks() == 0, timeout=5000)
    assert not [t for t in threading.enumerate() if t.name == "downloads"], "download thread left"


def search(qtbot, dialog: ModelsDialog, text: str, sort_index: int = 0) -> list[str]:
    tab = dialog.search_tab
    dialog.tabs.setCurrentWidget(tab)
    tab.query.clear()
    qtbot.keyClicks(tab.query, text)
    tab.sort.setCurrentIndex(sort_index)
    with qtbot.waitSignal(dialog.controller.search_finished, timeout=TIMEOUT):
        qtbot.mouseClick(tab.search_button, LEFT)
    return [tab.results.item(i).data(Qt.ItemDataRole.UserRole) for i in range(tab.results.count())]


def open_repo(qtbot, dialog: ModelsDialog, repo: str) -> None:
    tab = dialog.search_tab
    repos = [tab.results.item(i).data(Qt.ItemDataRole.UserRole) for i in range(tab.results.count())]
    tab.results.setCurrentRow(repos.index(repo))
    with qtbot.waitSignal(dialog.controller.repo_opened, timeout=TIMEOUT):
        qtbot.mouseClick(tab.open_button, LEFT)


def test_search_download_pause_restart_resume_install_and_chat(
    qtbot, hub: HFServer, make_window, tiny_models, models_page
) -> None:
    # The main window chats with tiny-b; the Models page is wired to it as the lead will.
    window = make_window(fast_settings(tiny_models["b"]))
    chat = window.controllers

    def wire(dialog: ModelsDialog) -> None:
        dialog.models_changed.connect(chat.models.refresh_models)
        dialog.use_model_requested.connect(chat.session.select_model)

    dialog = models_page(window, chat.settings)
    wire(dialog)
    controller = dialog.controller

    # Search, sorted by downloads and then by likes.
    assert search(qtbot, dialog, "chat") == [REPO, "tester/OtherChat-GGUF", GATED]
    assert "100 downloads" in dialog.search_tab.results.item(0).text()
    assert search(qtbot, dialog, "chat", sort_index=1)[0] == "tester/OtherChat-GGUF"

    # Open the repo: every GGUF variant, the split one as one; fit "estimating..." then a label.
    open_repo(qtbot, dialog, REPO)
    table = dialog.search_tab.variants
    assert sorted(v.quantization for v in table.variants()) == ["F16", "Q4_K_M", "Q8_0"]
    assert "(2 files)" in table.size_text("F16")
    assert table.fit_label("Q8_0") == ESTIMATING
    qtbot.waitUntil(lambda: table.fit_label("Q8_0") != ESTIMATING, timeout=TIMEOUT)
    assert {table.fit_label(q) for q in ("F16", "Q4_K_M", "Q8_0")} <= FIT_LABELS
    tip = table.fit_tooltip("Q8_0")
    assert "Weights" in tip and "KV cache" in tip and "Overhead" in tip
    assert any(RECOMMENDED in table.quantization_text(q) for q in ("F16", "Q4_K_M", "Q8_0"))
    # The header was read with Range requests, not by downloading a whole file.
    assert any(
        h.range and h.range.startswith("bytes=0-") for h in hub.log if h.path.startswith("/cdn/")
    )

    # Download Q8_0 slowly: the progress bar rises, speed and ETA are shown.
    # Slowly, and never past half the file until released: the pause below surely lands
    # midway, however slow the machine.
    size = len(hub.repos[REPO].files[Q8].data)
    hub.hold_after(Q8, size // 2, chunk=4096, delay=0.01)
    with qtbot.waitSignal(controller.job_changed, timeout=TIMEOUT):
        qtbot.mouseClick(table.buttons["Q8_0"], LEFT)
    assert dialog.tabs.currentWidget() is dialog.downloads_tab
    row = dialog.downloads_tab.row_for("Q8_0")
    assert row is not None
    values: list[int] = []
    row.bar.valueChanged.connect(values.append)
    qtbot.waitUntil(lambda: len([v for v in values if 0 < v < 1000]) >= 3, timeout=TIMEOUT)
    assert values == sorted(values)
    assert "/s" in row.status.text() and " of " in row.status.text()

    # Pause: the partial file stays on disk.
    qtbot.mouseClick(row.pause_button, LEFT)
    qtbot.waitUntil(lambda: row.state == "paused", timeout=TIMEOUT)
    part = downloads.partial_path(REPO, Q8)
    assert 0 < part.stat().st_size < size
    assert row.resume_button.isVisible() and not row.pause_button.isVisible()
    assert "Paused" in row.status.text()

    # "Restart": a fresh page finds the partial from the earlier run and resumes it.
    dialog.shutdown()
    dialog.close()
    dialog = models_page(window, chat.settings)
    wire(dialog)
    tab = dialog.downloads_tab
    dialog.tabs.setCurrentWidget(tab)
    qtbot.waitUntil(lambda: (REPO, Q8) in tab.pending_rows, timeout=TIMEOUT)
    pending = tab.pending_rows[(REPO, Q8)]
    assert 0 < pending.bar.value() < 1000
    hub.clear_faults()
    hub.release()
    changed: list[bool] = []
    dialog.models_changed.connect(lambda: changed.append(True))
    with qtbot.waitSignal(dialog.model_installed, timeout=TIMEOUT) as installed:
        qtbot.mouseClick(pending.resume_button, LEFT)
    path = Path(installed.args[0])
    assert path == paths.models_dir() / Q8
    assert path.read_bytes() == hub.repos[REPO].files[Q8].data
    assert not part.exists()
    assert changed
    last_get = hub.body_gets(Q8)[-1]
    assert last_get.range and not last_get.range.startswith("bytes=0-"), "it did not resume"
    qtbot.waitUntil(lambda: (REPO, Q8) not in tab.pending_rows, timeout=TIMEOUT)
    row = tab.row_for("Q8_0")
    assert row.bar.value() == 1000 and row.use_button.isVisible()

    # It is listed as installed, and the main window's picker has it at once.
    qtbot.waitUntil(lambda: Q8 in dialog.installed_tab.names(), timeout=TIMEOUT)
    qtbot.waitUntil(lambda: str(path) in window.header.model_picker.paths(), timeout=TIMEOUT)

    # "Use now" loads it in the chat window, and it answers.
    with qtbot.waitSignal(
        chat.models.model_changed,
        timeout=TIMEOUT,
        check_params_cb=lambda m: m is not None and Path(m.path) == path,
    ):
        qtbot.mouseClick(row.use_button, LEFT)
    qtbot.waitUntil(lambda: not chat.models.is_loading, timeout=TIMEOUT)
    reply = send(qtbot, window, "Hello from the downloaded model")
    assert reply.content
    assert reply.model_file == Q8


def test_cancel_deletes_the_partial(qtbot, hub: HFServer, models_page) -> None:
    dialog = models_page()
    search(qtbot, dialog, "tinychat")
    open_repo(qtbot, dialog, REPO)
    held = len(hub.repos[REPO].files["TinyChat-Q4_K_M.gguf"].data) // 2
    hub.hold_after("TinyChat-Q4_K_M.gguf", held, chunk=4096, delay=0.01)
    qtbot.mouseClick(dialog.search_tab.variants.buttons["Q4_K_M"], LEFT)
    qtbot.waitUntil(lambda: dialog.downloads_tab.row_for("Q4_K_M") is not None, timeout=TIMEOUT)
    row = dialog.downloads_tab.row_for("Q4_K_M")
    qtbot.waitUntil(lambda: row.bar.value() > 0, timeout=TIMEOUT)
    qtbot.mouseClick(row.cancel_button, LEFT)
    qtbot.waitUntil(lambda: row.state == "cancelled", timeout=TIMEOUT)
    assert "deleted" in row.status.text()
    assert not downloads.partial_path(REPO, "TinyChat-Q4_K_M.gguf").exists()
    assert not (paths.models_dir() / "TinyChat-Q4_K_M.gguf").exists()
    assert not row.cancel_button.isVisible() and not row.resume_button.isVisible()


def test_gated_repo_asks_for_a_token_then_downloads(qtbot, hub: HFServer, models_page) -> None:
    dialog = models_page()
    search(qtbot, dialog, "gated")
    open_repo(qtbot, dialog, GATED)
    prompt = dialog.search_tab.gated
    assert prompt.isVisible() and "gated" in prompt.text()
    assert prompt.field.accessibleName() == "Hugging Face token"

    # Without a token the download fails with a clear message and the token prompt.
    with qtbot.waitSignal(
        dialog.controller.job_changed,
        timeout=TIMEOUT,
        check_params_cb=lambda v: v.state == "failed",
    ):
        qtbot.mouseClick(dialog.search_tab.variants.buttons["Q4_K_M"], LEFT)
    tab = dialog.downloads_tab
    row = tab.row_for("Q4_K_M")
    assert "gated" in row.status.text() and "token" in row.status.text()
    assert tab.token_prompt.isVisible()

    # Entering the token saves it in the settings and retries the download.
    qtbot.keyClicks(tab.token_prompt.field, "hf_secret_test_token")
    with qtbot.waitSignal(dialog.model_installed, timeout=TIMEOUT):
        qtbot.mouseClick(tab.token_prompt.save_button, LEFT)
    assert Settings.load().hf_token == "hf_secret_test_token"
    assert not tab.token_prompt.isVisible() and not prompt.isVisible()
    assert (paths.models_dir() / "GatedChat-Q4_K_M.gguf").exists()


def test_errors_are_shown_clearly(qtbot, hub: HFServer, models_page, monkeypatch) -> None:
    dialog = models_page()
    search(qtbot, dialog, "tinychat")
    open_repo(qtbot, dialog, REPO)
    variants = dialog.search_tab.variants

    # Checksum mismatch: failed, explained, the damaged partial deleted.
    hub.corrupt(REPO, "TinyChat-Q4_K_M.gguf")
    with qtbot.waitSignal(
        dialog.controller.job_changed,
        timeout=TIMEOUT,
        check_params_cb=lambda v: v.state == "failed",
    ):
        qtbot.mouseClick(variants.buttons["Q4_K_M"], LEFT)
    row = dialog.downloads_tab.row_for("Q4_K_M")
    assert "checksum" in row.status.text()
    assert row.resume_button.text() == "Retry"
    assert not dialog.downloads_tab.token_prompt.isVisible()

    # Not enough disk space: said before the first byte is fetched.
    monkeypatch.setattr(downloads, "disk_free", lambda _path: 1024)
    with qtbot.waitSignal(
        dialog.controller.job_changed,
        timeout=TIMEOUT,
        check_params_cb=lambda v: v.state == "failed",
    ):
        qtbot.mouseClick(variants.buttons["Q8_0"], LEFT)
    assert "Not enough disk space" in dialog.downloads_tab.row_for("Q8_0").status.text()

    # Hugging Face access turned off: the search says so (a refused connection would say so too,
    # but only after huggingface_hub's own retries, about 20 s).
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    dialog.search_tab.query.setText("anything")
    with qtbot.waitSignal(dialog.controller.search_failed, timeout=TIMEOUT):
        qtbot.mouseClick(dialog.search_tab.search_button, LEFT)
    assert "Hugging Face access is turned off" in dialog.search_tab.status.text()
    assert dialog.search_tab.search_button.isEnabled()


def test_catalog_works_offline_with_fit_estimates(qtbot, models_page) -> None:
    dialog = models_page()
    tab = dialog.catalog_tab
    assert tab.list.count() >= 3
    tab.list.setCurrentRow(1)
    entry = tab.entries[1]
    assert entry.description in tab.details.text() and entry.license in tab.details.text()
    assert f"{entry.context_length:,}" in tab.details.text()
    table = tab.variants
    quants = [v.quantization for v in entry.variants]
    qtbot.waitUntil(lambda: table.fit_label(quants[0]) in FIT_LABELS, timeout=TIMEOUT)
    assert "GB" in table.size_text(quants[0])
    assert "KV cache" in table.fit_tooltip(quants[0])
    assert "KV cache" in table.details.text()
    # A machine too small for all of them recommends none; otherwise exactly one is marked.
    marked = [q for q in quants if RECOMMENDED in table.quantization_text(q)]
    fits = [q for q in quants if table.fit_label(q) != "Too large"]
    assert len(marked) == (1 if fits else 0)


def test_installed_delete_confirms_and_shows_space_freed(
    qtbot, tiny_models, monkeypatch, models_page
) -> None:
    dialog = models_page()
    tab = dialog.installed_tab
    dialog.tabs.setCurrentWidget(tab)
    qtbot.waitUntil(lambda: "tiny-a.gguf" in tab.names(), timeout=TIMEOUT)
    size = tiny_models["a"].stat().st_size
    tab.select("tiny-a.gguf")
    assert tab.table.item(tab.table.currentRow(), 1).text() == "F32"

    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.No)
    qtbot.mouseClick(tab.delete_button, LEFT)
    assert tiny_models["a"].exists()

    asked: list[str] = []

    def yes(_parent, _title, text, *_a, **_k):
        asked.append(text)
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", yes)
    with qtbot.waitSignal(dialog.models_changed, timeout=TIMEOUT):
        qtbot.mouseClick(tab.delete_button, LEFT)
    assert "tiny-a.gguf" in asked[0]
    assert not tiny_models["a"].exists()
    from assistant.ui.model_picker import human_size

    assert f"{human_size(size)} of disk space freed" in tab.status.text()
    qtbot.waitUntil(lambda: "tiny-a.gguf" not in tab.names(), timeout=TIMEOUT)


def _installed_tab(qtbot, window) -> tuple[ModelsDialog, object]:
    window.models_action.trigger()
    dialog = window.dialogs.models_dialog
    tab = dialog.installed_tab
    dialog.tabs.setCurrentWidget(tab)
    qtbot.waitUntil(lambda: "tiny-a.gguf" in tab.names(), timeout=TIMEOUT)
    tab.select("tiny-a.gguf")
    return dialog, tab


def test_deleting_the_model_in_use_switches_first(
    qtbot, make_window, tiny_models, monkeypatch
) -> None:
    from assistant.models import library

    window = make_window(fast_settings(tiny_models["a"]))
    app = window.controllers
    dialog, tab = _installed_tab(qtbot, window)
    asked: list[str] = []

    def yes(_parent, _title, text, *_a, **_k):
        asked.append(text)
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", yes)
    in_use_when_deleted: list[str] = []
    real_delete = library.delete_model

    def delete(name: str) -> int:
        loaded = app.models.loaded
        in_use_when_deleted.append(loaded.path.name if loaded else "")
        return real_delete(name)

    monkeypatch.setattr(library, "delete_model", delete)
    with qtbot.waitSignal(dialog.models_changed, timeout=TIMEOUT):
        qtbot.mouseClick(tab.delete_button, LEFT)
    assert "tiny-a.gguf is the model in use" in asked[0]
    assert not tiny_models["a"].exists()
    assert in_use_when_deleted == ["tiny-b.gguf"]  # switched before the file went
    assert app.models.loaded.path.name == "tiny-b.gguf" and not app.models.is_loading
    assert app.settings.default_model == "tiny-b.gguf"
    assert "tiny-b" in window.status_bar.model_label.text()
    assert send(qtbot, window, "still here").model_file == "tiny-b.gguf"

    # Another model (not in use) is deleted without touching the chat's model.
    qtbot.waitUntil(lambda: "tiny-plain.gguf" in tab.names(), timeout=TIMEOUT)
    tab.select("tiny-plain.gguf")
    with qtbot.waitSignal(dialog.models_changed, timeout=TIMEOUT):
        qtbot.mouseClick(tab.delete_button, LEFT)
    assert "model in use" not in asked[1]
    assert app.models.loaded.path.name == "tiny-b.gguf"
    dialog.close()


def test_deleting_the_only_model_in_use_unloads_it(
    qtbot, make_window, tiny_models, monkeypatch
) -> None:
    from assistant.models import library

    for key in ("b", "plain"):
        tiny_models[key].unlink()
    window = make_window(fast_settings(tiny_models["a"]))
    app = window.controllers
    qtbot.waitUntil(lambda: window.header.model_picker.combo.count() == 1, timeout=TIMEOUT)
    dialog, tab = _installed_tab(qtbot, window)
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)

    # A failure to delete is shown as a message (the model is unloaded all the same).
    warnings: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda _p, _t, text, *a, **k: warnings.append(text))

    def refuse(name: str) -> int:
        raise library.ModelError(f"Could not delete {name}: it is busy.")

    real_delete = library.delete_model
    monkeypatch.setattr(library, "delete_model", refuse)
    with qtbot.waitSignal(dialog.controller.delete_failed, timeout=TIMEOUT):
        qtbot.mouseClick(tab.delete_button, LEFT)
    assert warnings and "Could not delete tiny-a.gguf: it is busy." in warnings[0]
    assert "busy" in tab.status.text()
    assert app.models.loaded is None and not app.models.is_loading
    assert window.stack.currentWidget() is window.empty_state
    assert window.status_bar.model_label.text() == "No model"
    assert not window.composer.send_button.isEnabled()
    assert app.settings.default_model is None

    monkeypatch.setattr(library, "delete_model", real_delete)
    tab.select("tiny-a.gguf")
    with qtbot.waitSignal(dialog.models_changed, timeout=TIMEOUT):
        qtbot.mouseClick(tab.delete_button, LEFT)
    assert not tiny_models["a"].exists()
    qtbot.waitUntil(lambda: tab.names() == [], timeout=TIMEOUT)
    dialog.close()
